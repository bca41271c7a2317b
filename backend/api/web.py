"""The dashboard (placeholder until the frontend lands)."""
from flask import Blueprint

bp = Blueprint("web", __name__)
