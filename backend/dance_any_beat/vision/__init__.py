"""Seeing people in images: who is in a still, where, and how they move in a video (mediapipe Pose)."""

from .person import Person, PersonError, PersonFinder, find_dancer

__all__ = ["Person", "PersonError", "PersonFinder", "find_dancer"]
