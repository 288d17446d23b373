"""NAO-WS (Luo et al., NeurIPS 2018): encoder-predictor-decoder search over a pool of ENAS
micro architectures on the one weight-sharing trainer."""
