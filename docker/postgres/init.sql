-- One ledger database and one role per gateway, so that no gateway can read
-- another authority's ledger. Demo passwords: change them before real use
-- (and in compose.yaml's CAFGW_DATABASE__URL of each gateway).
CREATE ROLE ledger_332 LOGIN PASSWORD 'demo-ledger-332';
CREATE ROLE ledger_333 LOGIN PASSWORD 'demo-ledger-333';
CREATE ROLE ledger_336 LOGIN PASSWORD 'demo-ledger-336';
CREATE DATABASE ledger_332 OWNER ledger_332;
CREATE DATABASE ledger_333 OWNER ledger_333;
CREATE DATABASE ledger_336 OWNER ledger_336;
REVOKE ALL ON DATABASE ledger_332 FROM PUBLIC;
REVOKE ALL ON DATABASE ledger_333 FROM PUBLIC;
REVOKE ALL ON DATABASE ledger_336 FROM PUBLIC;
