"""The sign-off (`harness signoff`, what `make signoff` runs): run (the whole run, from the stack to the
verdict), scenarios (a scenario pass as a child pytest), drained (the second pass on a drained unit) and
progress (the pytest plugin the child loads: progress lines, running verdict, step times). The settings are
read once, in run, and what the passes need is handed down."""
