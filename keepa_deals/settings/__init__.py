"""Every setting, declared once: its variable, type, default, allowed range and help.

The settings are grouped by what they configure, each group a frozen dataclass that
extends the one before (connections -> budget -> evaluation -> runtime -> dashboard), so each
declaration (`setting(...)`) is the only place a setting is written down.
`keepa_deals.config.Settings` is the last of them, with loading, validation
(`rules.py`) and presentation. `.env.example` is generated from these declarations.
"""
