"""Mainstem: a self-hostable Customer Data Platform that speaks Segment's Tracking API."""

__version__ = "0.1.0"
