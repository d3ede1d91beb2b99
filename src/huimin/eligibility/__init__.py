"""Eligibility: geofence, identity, union membership."""
