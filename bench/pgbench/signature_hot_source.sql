-- signature.sql plus an upsert of one shared `sources` row in every transaction: the
-- hot-row pattern to keep off the write path (every signature waits for the previous one's
-- commit to update the same row).
\set n random(1, 2000000000)
BEGIN;
INSERT INTO sources (source, medium, campaign, content, location, inserted_at, updated_at)
VALUES ('newsletter', 'email', 'spring', '', 'https://campaign.example.org/sign',
        localtimestamp(0), localtimestamp(0))
ON CONFLICT (source, medium, campaign, content, location)
DO UPDATE SET updated_at = excluded.updated_at
RETURNING id AS hot_source \gset
INSERT INTO supporters (fingerprint, campaign_id, action_page_id, source_id, first_name, email,
                        area, processing_status, email_status, inserted_at, updated_at)
VALUES (sha256(convert_to(:client_id || '-' || :n || '-' || clock_timestamp(), 'UTF8')),
        :campaign, :page, :source, 'Ann', 'pg' || :client_id || '-' || :n || '@bench.example.org',
        'FR', 0, 0, localtimestamp(0), localtimestamp(0))
RETURNING id AS sid \gset
INSERT INTO contacts (supporter_id, payload, crypto_nonce, public_key_id, sign_key_id,
                      communication_consent, communication_scopes, delivery_consent, org_id,
                      inserted_at, updated_at)
VALUES (:sid, decode(repeat('5f3a9c0e7d21b4e8', 37) || '5f3a9c0e', 'hex'),
        decode('000102030405060708090a0b0c0d0e0f1011121314151617', 'hex'), :key, :sign_key,
        true, ARRAY['email'], true, :org, localtimestamp(0), localtimestamp(0));
INSERT INTO actions (supporter_id, with_consent, action_type, fields, campaign_id, action_page_id,
                     source_id, processing_status, testing, inserted_at, updated_at)
VALUES (:sid, true, 'petition', '{"comment": "hi"}', :campaign, :page, :source, 0, false,
        localtimestamp(0), localtimestamp(0));
COMMIT;
