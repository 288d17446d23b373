"""Search methods: the AutoShrink cell search (shared loop, CNN and RNN searches), random
search, the one weight-sharing trainer with DARTS, GDAS, ENAS and NAO-WS, and the discrete
searches on NAS-Bench-201."""
