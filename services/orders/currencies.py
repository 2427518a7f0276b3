"""ISO 4217 currencies an order may be priced in.

Shipped as a frozenset rather than a dependency: pycountry carries every ISO standard with
its translations (tens of MB) to answer one membership question, and ISO changes this list
a few times a year, each change a one-line diff here. Source: ISO 4217 List One (the
maintenance agency's published table), amendments up to 2025. Codes in a transition period
(ANG next to XCG, BGN until its euro changeover is withdrawn) stay until ISO withdraws them.

Left out on purpose, although List One carries them: fund codes and units of account
(BOV CHE CHW CLF COU MXV USN UYI UYW XDR XSU XUA), precious metals (XAG XAU XPD XPT), bond
market units (XBA XBB XBC XBD), the testing code XTS and "no currency" XXX. Nobody pays for
an order in troy ounces of gold.
"""

from __future__ import annotations

ACTIVE_CURRENCIES: frozenset[str] = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD
    BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB
    EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK
    JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA
    MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK
    PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN
    SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV
    WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()
)
