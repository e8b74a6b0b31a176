"""Reading and writing: data sets, models and results."""
