"""CNN cell search: proxy data, proxy estimator and the autoshrink_cnn CLI."""
