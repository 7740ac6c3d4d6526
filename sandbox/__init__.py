"""Isolated execution of untrusted repository code. Imports nothing else of ours."""
