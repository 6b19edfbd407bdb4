"""What AWS would book for the unit, modelled: CPU- and I/O-credit ledgers, a modelled day of credits, and the
monthly free-tier usage and cost. Arithmetic on named inputs, apart from measuring (harness.measure), which
feeds it samples and durations."""
