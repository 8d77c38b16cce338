"""The package version, in one place (imported by the stages that record it)."""

__version__ = "0.1.0"
