"""The sign-off (`harness signoff`, what `make signoff` runs): the scenario runner, the drained pass and the
pytest plugin that shows the scenarios' progress and running verdict."""
