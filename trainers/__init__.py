"""Trainers that consume any conforming expertdata dataset (behaviour cloning, GAIL), each a plugin."""
