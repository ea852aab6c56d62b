"""The test suite, a regular package: ``tests.helpers`` and the like resolve here even when an installed
distribution ships a top-level ``tests`` package (a namespace package loses to any regular one)."""
