"""The pure domain: codes, target rules, links. No I/O lives here."""
