"""What a run shows: the terminal scorecard, and files for a client or a CI gate."""
