"""Machinery several levers share: choosing on dev (`dev_choice`), retrieval (`retrieval`)."""
