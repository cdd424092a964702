"""A citizen's personal data under the LGPD: one person's data found across every store,
exported for an access request, erased for an erasure request.

``python -m bot.addons.whatsapp.privacy export|erase <phone or BSUID>`` (``make
privacy-export ID=…``, ``make privacy-erase ID=…``); docs/operators/personal-data.md lists
the stores, what each holds and for how long.
"""
