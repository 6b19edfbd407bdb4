"""Measuring: the load core, key popularity, samplers, the metric registry, the results file and run facts."""
