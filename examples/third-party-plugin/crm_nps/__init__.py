"""crm-nps: Net Promoter Score surveys for crm-core, after interactions.

The entry point is :mod:`crm_nps.plugin`; the table is in :mod:`crm_nps.models`, the
rules for writing it in :mod:`crm_nps.services`, the score arithmetic in
:mod:`crm_nps.score`, the customers' answer page in :mod:`crm_nps.public`.
"""
