"""Kustomize files shipped as package data (see k8s/render.py)."""
