"""Filters of the viewer app's templates."""

from django import template

register = template.Library()


@register.filter
def watch_duration(seconds: int) -> str:
    """A running time as a catalog shows it: "1 h 52 min", "44 min"."""
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


@register.filter
def timecode(seconds: int) -> str:
    """ "1:02:03" or "12:03"."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
