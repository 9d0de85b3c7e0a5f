"""Small inputs shared by several test modules."""

SMALL_SCRIPT = """# Opening
The sky over the volcano glows red.
Ash falls like grey snow.
> camera: zoom-in | motion: 0.7

## Ending
Life returns to the slopes.
"""
