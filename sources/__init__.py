"""Data sources. (The source-layer engineer extends this entry point.)"""
