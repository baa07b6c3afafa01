"""Local development on embedded defaults (``make run``)."""

from .base import *
from .env import env

DEBUG = env.get_bool("DEBUG", True)
