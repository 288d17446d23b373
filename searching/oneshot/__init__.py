"""The one weight-sharing trainer and its methods."""
