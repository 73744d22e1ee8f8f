"""cluster-monitor's public API (routes only; the logic lives beside it)."""

from fastapi import APIRouter

router = APIRouter()
