// placeholder: the benchmark lands here
