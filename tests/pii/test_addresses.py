"""Street addresses (gateway/pii/addresses.py): the formats it reads, and the numbered text of legal,
encyclopaedic and chat prose that it must leave alone (every span it finds is rewritten on the way
out, so a case number read as an address breaks the text a legal team sends)."""

from __future__ import annotations

import pytest

from gateway.pii.addresses import StreetAddressRecognizer


def addresses(text: str) -> list[str]:
    return [text[r.start : r.end] for r in StreetAddressRecognizer().analyze(text, ["ADDRESS"])]


@pytest.mark.parametrize(
    ("text", "street"),
    [
        ("Ship it to 742 Evergreen Terrace, Springfield.", "742 Evergreen Terrace"),
        ("Our office: 4120 Harbor View Dr, Suite 300", "4120 Harbor View Dr"),
        ("Sie wohnt in der Lindenstraße 12 seit Mai.", "Lindenstraße 12"),
        ("Adresse: Berliner Straße 44, Potsdam", "Berliner Straße 44"),
        ("asunto osoitteessa Hämeenkatu 25 B", "Hämeenkatu 25"),
        ("Iroda: Andrássy út 61., Budapest", "Andrássy út 61"),
        ("The shop is at Via Garibaldi 18 in Turin.", "Via Garibaldi 18"),
        ("Livrer au 26 boulevard Carnot, Lille", "26 boulevard Carnot"),
        ("Envío a Paseo de la Castellana 89, Madrid", "Paseo de la Castellana 89"),
        ("Kontor: 09457 Vana-Viru 25, Tallinn", "09457 Vana-Viru 25"),
        ("meet me at 2407 tawastintie 6 tomorrow", "tawastintie 6"),
        ("send the parcel to 3744 Retreat Avenue and call me", "3744 Retreat Avenue"),
        ("Room 403, Ranka Park, 4th Floor, 4/5/6 Lalbagh Road, Bangalore", "4/5/6 Lalbagh Road"),
        ("the Borrower, whose address is 201 Broadway, New York", "201 Broadway"),
    ],
)
def test_street_addresses_in_many_formats_are_found(text, street):
    found = addresses(text)
    assert any(street in f for f in found), found


@pytest.mark.parametrize(
    "text",
    [
        "Writ Petition No. 2903 of 2011 was heard with Civil Appeal 1902 of 2012.",
        "The petitioner, aged about 57 years, was arrested at about 11.00 p.m.",
        "See (2005) 10 SCC 97, 24 Q.B.D. 712 and 2008 ACJ 776.",
        "Relied on: AIR 1991 Kerala 152 and 1965 Allahabad 301.",
        "An appeal under Order 43 Rule 1 against the order in W.P. 7642/2015.",
        "Chapter 2 opens in Leicester, after 50 years; the team lost 28 to 42.",
        "The treaty was signed on 15 September 1972 and ratified between 1985 and 1989.",
        "The 2004 conference took place at the Brighton Centre; 275 basis points, 548 points.",
        "Records were opened after 50 years, during 1990 and throughout 2014.",
        "Remembering 25 years of the committee 5 session.",
        "Criminal Appeal No. 2303/2015 High Court of Madhya Pradesh, order dated 05-08-2015 High Court.",
        "Date of Order: 19.05.2014 Police Station Saket; Fir No.: 87/13 Police Station.",
        "Relied on (1978) 48 Comp Cas 231 and (2012) 2 Supreme Court Cases 534.",
        "Challan No.: 714097 Circle; Item No. 107 Court No. 4",
        "AIR 1974 Supreme Court 2154 was followed; see the 2012 Nuclear Security Summit.",
        "about 2,169 developers across 14 countries and 14,500 troops",
        "a complaint U/s 138 Negotiable Instrument Act 1881",
        "2009 Acj 1298 Honourable Dr. Justice B. Siva Sankara Rao",
    ],
)
def test_citations_dates_and_quantities_are_not_addresses(text):
    assert addresses(text) == []
