"""Webhooks: endpoints that receive the program's events, signed (Standard Webhooks)."""
