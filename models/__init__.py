"""Shipped model files (installed as the vs_superslomo.models package data)."""
