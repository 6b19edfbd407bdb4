"""Measuring: the load core, key popularity, samplers, progress, the metric registry, the results file, run
facts and projections."""
