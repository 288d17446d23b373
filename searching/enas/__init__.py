"""ENAS (Pham et al., 2018): controller LSTM + shared weights, RNN cell and CNN macro/micro."""
