"""The one weight-sharing trainer (image and text data), its CLI glue and the method interface."""
