"""wrc: a weight-refreshable compiler."""
