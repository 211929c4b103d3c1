"""``wolverhampton-json``: Wolverhampton's Early Help Module JSON export (entry: ``adapter``)."""
