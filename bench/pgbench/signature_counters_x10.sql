-- signature_counters.sql with ten signatures in one transaction: what grouping the
-- signatures that arrive together into one commit saves PostgreSQL (one WAL flush for ten).
\set n0 random(1, 2000000000)
\set n1 random(1, 2000000000)
\set n2 random(1, 2000000000)
\set n3 random(1, 2000000000)
\set n4 random(1, 2000000000)
\set n5 random(1, 2000000000)
\set n6 random(1, 2000000000)
\set n7 random(1, 2000000000)
\set n8 random(1, 2000000000)
\set n9 random(1, 2000000000)
BEGIN;
INSERT INTO supporters (fingerprint, campaign_id, action_page_id, source_id, first_name, email,
                        area, processing_status, email_status, inserted_at, updated_at)
VALUES (sha256(convert_to(:client_id || '-' || :n0 || '-' || clock_timestamp(), 'UTF8')),
        :campaign, :page, :source, 'Ann', 'pg' || :client_id || '-' || :n0 || '@bench.example.org',
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
WITH person AS (
  INSERT INTO counter_people (campaign_id, fingerprint, area, prev_area, seen)
  VALUES (:campaign, sha256(convert_to(:client_id || '-' || :n0 || '-c0', 'UTF8')), 'FR', NULL, 1)
  ON CONFLICT (campaign_id, fingerprint) DO UPDATE
  SET prev_area = counter_people.area, area = COALESCE(excluded.area, counter_people.area),
      seen = counter_people.seen + 1
  RETURNING seen, prev_area, area
), org_person AS (
  INSERT INTO counter_org_people (campaign_id, org_id, fingerprint)
  VALUES (:campaign, :org, sha256(convert_to(:client_id || '-' || :n0 || '-c0', 'UTF8')))
  ON CONFLICT DO NOTHING
  RETURNING 1
), change AS (
  SELECT CASE WHEN p.seen = 1 THEN 1 ELSE 0 END AS supporters,
         (SELECT count(*) FROM org_person) AS org_supporters,
         CASE WHEN p.area IS NOT NULL AND (p.prev_area IS NULL OR p.prev_area <> p.area)
              THEN p.area END AS gained,
         CASE WHEN p.prev_area IS NOT NULL AND p.prev_area <> p.area
              THEN p.prev_area END AS left_area
  FROM person AS p
)
INSERT INTO counter_deltas (campaign_id, action_type, actions, supporters, org_id,
                            org_supporters, area, area_supporters, left_area)
SELECT :campaign, 'petition', 1, c.supporters, :org, c.org_supporters,
       c.gained, CASE WHEN c.gained IS NULL THEN 0 ELSE 1 END, c.left_area
FROM change AS c;
INSERT INTO supporters (fingerprint, campaign_id, action_page_id, source_id, first_name, email,
                        area, processing_status, email_status, inserted_at, updated_at)
VALUES (sha256(convert_to(:client_id || '-' || :n1 || '-' || clock_timestamp(), 'UTF8')),
        :campaign, :page, :source, 'Ann', 'pg' || :client_id || '-' || :n1 || '@bench.example.org',
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
WITH person AS (
  INSERT INTO counter_people (campaign_id, fingerprint, area, prev_area, seen)
  VALUES (:campaign, sha256(convert_to(:client_id || '-' || :n1 || '-c1', 'UTF8')), 'FR', NULL, 1)
  ON CONFLICT (campaign_id, fingerprint) DO UPDATE
  SET prev_area = counter_people.area, area = COALESCE(excluded.area, counter_people.area),
      seen = counter_people.seen + 1
  RETURNING seen, prev_area, area
), org_person AS (
  INSERT INTO counter_org_people (campaign_id, org_id, fingerprint)
  VALUES (:campaign, :org, sha256(convert_to(:client_id || '-' || :n1 || '-c1', 'UTF8')))
  ON CONFLICT DO NOTHING
  RETURNING 1
), change AS (
  SELECT CASE WHEN p.seen = 1 THEN 1 ELSE 0 END AS supporters,
         (SELECT count(*) FROM org_person) AS org_supporters,
         CASE WHEN p.area IS NOT NULL AND (p.prev_area IS NULL OR p.prev_area <> p.area)
              THEN p.area END AS gained,
         CASE WHEN p.prev_area IS NOT NULL AND p.prev_area <> p.area
              THEN p.prev_area END AS left_area
  FROM person AS p
)
INSERT INTO counter_deltas (campaign_id, action_type, actions, supporters, org_id,
                            org_supporters, area, area_supporters, left_area)
SELECT :campaign, 'petition', 1, c.supporters, :org, c.org_supporters,
       c.gained, CASE WHEN c.gained IS NULL THEN 0 ELSE 1 END, c.left_area
FROM change AS c;
INSERT INTO supporters (fingerprint, campaign_id, action_page_id, source_id, first_name, email,
                        area, processing_status, email_status, inserted_at, updated_at)
VALUES (sha256(convert_to(:client_id || '-' || :n2 || '-' || clock_timestamp(), 'UTF8')),
        :campaign, :page, :source, 'Ann', 'pg' || :client_id || '-' || :n2 || '@bench.example.org',
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
WITH person AS (
  INSERT INTO counter_people (campaign_id, fingerprint, area, prev_area, seen)
  VALUES (:campaign, sha256(convert_to(:client_id || '-' || :n2 || '-c2', 'UTF8')), 'FR', NULL, 1)
  ON CONFLICT (campaign_id, fingerprint) DO UPDATE
  SET prev_area = counter_people.area, area = COALESCE(excluded.area, counter_people.area),
      seen = counter_people.seen + 1
  RETURNING seen, prev_area, area
), org_person AS (
  INSERT INTO counter_org_people (campaign_id, org_id, fingerprint)
  VALUES (:campaign, :org, sha256(convert_to(:client_id || '-' || :n2 || '-c2', 'UTF8')))
  ON CONFLICT DO NOTHING
  RETURNING 1
), change AS (
  SELECT CASE WHEN p.seen = 1 THEN 1 ELSE 0 END AS supporters,
         (SELECT count(*) FROM org_person) AS org_supporters,
         CASE WHEN p.area IS NOT NULL AND (p.prev_area IS NULL OR p.prev_area <> p.area)
              THEN p.area END AS gained,
         CASE WHEN p.prev_area IS NOT NULL AND p.prev_area <> p.area
              THEN p.prev_area END AS left_area
  FROM person AS p
)
INSERT INTO counter_deltas (campaign_id, action_type, actions, supporters, org_id,
                            org_supporters, area, area_supporters, left_area)
SELECT :campaign, 'petition', 1, c.supporters, :org, c.org_supporters,
       c.gained, CASE WHEN c.gained IS NULL THEN 0 ELSE 1 END, c.left_area
FROM change AS c;
INSERT INTO supporters (fingerprint, campaign_id, action_page_id, source_id, first_name, email,
                        area, processing_status, email_status, inserted_at, updated_at)
VALUES (sha256(convert_to(:client_id || '-' || :n3 || '-' || clock_timestamp(), 'UTF8')),
        :campaign, :page, :source, 'Ann', 'pg' || :client_id || '-' || :n3 || '@bench.example.org',
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
WITH person AS (
  INSERT INTO counter_people (campaign_id, fingerprint, area, prev_area, seen)
  VALUES (:campaign, sha256(convert_to(:client_id || '-' || :n3 || '-c3', 'UTF8')), 'FR', NULL, 1)
  ON CONFLICT (campaign_id, fingerprint) DO UPDATE
  SET prev_area = counter_people.area, area = COALESCE(excluded.area, counter_people.area),
      seen = counter_people.seen + 1
  RETURNING seen, prev_area, area
), org_person AS (
  INSERT INTO counter_org_people (campaign_id, org_id, fingerprint)
  VALUES (:campaign, :org, sha256(convert_to(:client_id || '-' || :n3 || '-c3', 'UTF8')))
  ON CONFLICT DO NOTHING
  RETURNING 1
), change AS (
  SELECT CASE WHEN p.seen = 1 THEN 1 ELSE 0 END AS supporters,
         (SELECT count(*) FROM org_person) AS org_supporters,
         CASE WHEN p.area IS NOT NULL AND (p.prev_area IS NULL OR p.prev_area <> p.area)
              THEN p.area END AS gained,
         CASE WHEN p.prev_area IS NOT NULL AND p.prev_area <> p.area
              THEN p.prev_area END AS left_area
  FROM person AS p
)
INSERT INTO counter_deltas (campaign_id, action_type, actions, supporters, org_id,
                            org_supporters, area, area_supporters, left_area)
SELECT :campaign, 'petition', 1, c.supporters, :org, c.org_supporters,
       c.gained, CASE WHEN c.gained IS NULL THEN 0 ELSE 1 END, c.left_area
FROM change AS c;
INSERT INTO supporters (fingerprint, campaign_id, action_page_id, source_id, first_name, email,
                        area, processing_status, email_status, inserted_at, updated_at)
VALUES (sha256(convert_to(:client_id || '-' || :n4 || '-' || clock_timestamp(), 'UTF8')),
        :campaign, :page, :source, 'Ann', 'pg' || :client_id || '-' || :n4 || '@bench.example.org',
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
WITH person AS (
  INSERT INTO counter_people (campaign_id, fingerprint, area, prev_area, seen)
  VALUES (:campaign, sha256(convert_to(:client_id || '-' || :n4 || '-c4', 'UTF8')), 'FR', NULL, 1)
  ON CONFLICT (campaign_id, fingerprint) DO UPDATE
  SET prev_area = counter_people.area, area = COALESCE(excluded.area, counter_people.area),
      seen = counter_people.seen + 1
  RETURNING seen, prev_area, area
), org_person AS (
  INSERT INTO counter_org_people (campaign_id, org_id, fingerprint)
  VALUES (:campaign, :org, sha256(convert_to(:client_id || '-' || :n4 || '-c4', 'UTF8')))
  ON CONFLICT DO NOTHING
  RETURNING 1
), change AS (
  SELECT CASE WHEN p.seen = 1 THEN 1 ELSE 0 END AS supporters,
         (SELECT count(*) FROM org_person) AS org_supporters,
         CASE WHEN p.area IS NOT NULL AND (p.prev_area IS NULL OR p.prev_area <> p.area)
              THEN p.area END AS gained,
         CASE WHEN p.prev_area IS NOT NULL AND p.prev_area <> p.area
              THEN p.prev_area END AS left_area
  FROM person AS p
)
INSERT INTO counter_deltas (campaign_id, action_type, actions, supporters, org_id,
                            org_supporters, area, area_supporters, left_area)
SELECT :campaign, 'petition', 1, c.supporters, :org, c.org_supporters,
       c.gained, CASE WHEN c.gained IS NULL THEN 0 ELSE 1 END, c.left_area
FROM change AS c;
INSERT INTO supporters (fingerprint, campaign_id, action_page_id, source_id, first_name, email,
                        area, processing_status, email_status, inserted_at, updated_at)
VALUES (sha256(convert_to(:client_id || '-' || :n5 || '-' || clock_timestamp(), 'UTF8')),
        :campaign, :page, :source, 'Ann', 'pg' || :client_id || '-' || :n5 || '@bench.example.org',
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
WITH person AS (
  INSERT INTO counter_people (campaign_id, fingerprint, area, prev_area, seen)
  VALUES (:campaign, sha256(convert_to(:client_id || '-' || :n5 || '-c5', 'UTF8')), 'FR', NULL, 1)
  ON CONFLICT (campaign_id, fingerprint) DO UPDATE
  SET prev_area = counter_people.area, area = COALESCE(excluded.area, counter_people.area),
      seen = counter_people.seen + 1
  RETURNING seen, prev_area, area
), org_person AS (
  INSERT INTO counter_org_people (campaign_id, org_id, fingerprint)
  VALUES (:campaign, :org, sha256(convert_to(:client_id || '-' || :n5 || '-c5', 'UTF8')))
  ON CONFLICT DO NOTHING
  RETURNING 1
), change AS (
  SELECT CASE WHEN p.seen = 1 THEN 1 ELSE 0 END AS supporters,
         (SELECT count(*) FROM org_person) AS org_supporters,
         CASE WHEN p.area IS NOT NULL AND (p.prev_area IS NULL OR p.prev_area <> p.area)
              THEN p.area END AS gained,
         CASE WHEN p.prev_area IS NOT NULL AND p.prev_area <> p.area
              THEN p.prev_area END AS left_area
  FROM person AS p
)
INSERT INTO counter_deltas (campaign_id, action_type, actions, supporters, org_id,
                            org_supporters, area, area_supporters, left_area)
SELECT :campaign, 'petition', 1, c.supporters, :org, c.org_supporters,
       c.gained, CASE WHEN c.gained IS NULL THEN 0 ELSE 1 END, c.left_area
FROM change AS c;
INSERT INTO supporters (fingerprint, campaign_id, action_page_id, source_id, first_name, email,
                        area, processing_status, email_status, inserted_at, updated_at)
VALUES (sha256(convert_to(:client_id || '-' || :n6 || '-' || clock_timestamp(), 'UTF8')),
        :campaign, :page, :source, 'Ann', 'pg' || :client_id || '-' || :n6 || '@bench.example.org',
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
WITH person AS (
  INSERT INTO counter_people (campaign_id, fingerprint, area, prev_area, seen)
  VALUES (:campaign, sha256(convert_to(:client_id || '-' || :n6 || '-c6', 'UTF8')), 'FR', NULL, 1)
  ON CONFLICT (campaign_id, fingerprint) DO UPDATE
  SET prev_area = counter_people.area, area = COALESCE(excluded.area, counter_people.area),
      seen = counter_people.seen + 1
  RETURNING seen, prev_area, area
), org_person AS (
  INSERT INTO counter_org_people (campaign_id, org_id, fingerprint)
  VALUES (:campaign, :org, sha256(convert_to(:client_id || '-' || :n6 || '-c6', 'UTF8')))
  ON CONFLICT DO NOTHING
  RETURNING 1
), change AS (
  SELECT CASE WHEN p.seen = 1 THEN 1 ELSE 0 END AS supporters,
         (SELECT count(*) FROM org_person) AS org_supporters,
         CASE WHEN p.area IS NOT NULL AND (p.prev_area IS NULL OR p.prev_area <> p.area)
              THEN p.area END AS gained,
         CASE WHEN p.prev_area IS NOT NULL AND p.prev_area <> p.area
              THEN p.prev_area END AS left_area
  FROM person AS p
)
INSERT INTO counter_deltas (campaign_id, action_type, actions, supporters, org_id,
                            org_supporters, area, area_supporters, left_area)
SELECT :campaign, 'petition', 1, c.supporters, :org, c.org_supporters,
       c.gained, CASE WHEN c.gained IS NULL THEN 0 ELSE 1 END, c.left_area
FROM change AS c;
INSERT INTO supporters (fingerprint, campaign_id, action_page_id, source_id, first_name, email,
                        area, processing_status, email_status, inserted_at, updated_at)
VALUES (sha256(convert_to(:client_id || '-' || :n7 || '-' || clock_timestamp(), 'UTF8')),
        :campaign, :page, :source, 'Ann', 'pg' || :client_id || '-' || :n7 || '@bench.example.org',
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
WITH person AS (
  INSERT INTO counter_people (campaign_id, fingerprint, area, prev_area, seen)
  VALUES (:campaign, sha256(convert_to(:client_id || '-' || :n7 || '-c7', 'UTF8')), 'FR', NULL, 1)
  ON CONFLICT (campaign_id, fingerprint) DO UPDATE
  SET prev_area = counter_people.area, area = COALESCE(excluded.area, counter_people.area),
      seen = counter_people.seen + 1
  RETURNING seen, prev_area, area
), org_person AS (
  INSERT INTO counter_org_people (campaign_id, org_id, fingerprint)
  VALUES (:campaign, :org, sha256(convert_to(:client_id || '-' || :n7 || '-c7', 'UTF8')))
  ON CONFLICT DO NOTHING
  RETURNING 1
), change AS (
  SELECT CASE WHEN p.seen = 1 THEN 1 ELSE 0 END AS supporters,
         (SELECT count(*) FROM org_person) AS org_supporters,
         CASE WHEN p.area IS NOT NULL AND (p.prev_area IS NULL OR p.prev_area <> p.area)
              THEN p.area END AS gained,
         CASE WHEN p.prev_area IS NOT NULL AND p.prev_area <> p.area
              THEN p.prev_area END AS left_area
  FROM person AS p
)
INSERT INTO counter_deltas (campaign_id, action_type, actions, supporters, org_id,
                            org_supporters, area, area_supporters, left_area)
SELECT :campaign, 'petition', 1, c.supporters, :org, c.org_supporters,
       c.gained, CASE WHEN c.gained IS NULL THEN 0 ELSE 1 END, c.left_area
FROM change AS c;
INSERT INTO supporters (fingerprint, campaign_id, action_page_id, source_id, first_name, email,
                        area, processing_status, email_status, inserted_at, updated_at)
VALUES (sha256(convert_to(:client_id || '-' || :n8 || '-' || clock_timestamp(), 'UTF8')),
        :campaign, :page, :source, 'Ann', 'pg' || :client_id || '-' || :n8 || '@bench.example.org',
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
WITH person AS (
  INSERT INTO counter_people (campaign_id, fingerprint, area, prev_area, seen)
  VALUES (:campaign, sha256(convert_to(:client_id || '-' || :n8 || '-c8', 'UTF8')), 'FR', NULL, 1)
  ON CONFLICT (campaign_id, fingerprint) DO UPDATE
  SET prev_area = counter_people.area, area = COALESCE(excluded.area, counter_people.area),
      seen = counter_people.seen + 1
  RETURNING seen, prev_area, area
), org_person AS (
  INSERT INTO counter_org_people (campaign_id, org_id, fingerprint)
  VALUES (:campaign, :org, sha256(convert_to(:client_id || '-' || :n8 || '-c8', 'UTF8')))
  ON CONFLICT DO NOTHING
  RETURNING 1
), change AS (
  SELECT CASE WHEN p.seen = 1 THEN 1 ELSE 0 END AS supporters,
         (SELECT count(*) FROM org_person) AS org_supporters,
         CASE WHEN p.area IS NOT NULL AND (p.prev_area IS NULL OR p.prev_area <> p.area)
              THEN p.area END AS gained,
         CASE WHEN p.prev_area IS NOT NULL AND p.prev_area <> p.area
              THEN p.prev_area END AS left_area
  FROM person AS p
)
INSERT INTO counter_deltas (campaign_id, action_type, actions, supporters, org_id,
                            org_supporters, area, area_supporters, left_area)
SELECT :campaign, 'petition', 1, c.supporters, :org, c.org_supporters,
       c.gained, CASE WHEN c.gained IS NULL THEN 0 ELSE 1 END, c.left_area
FROM change AS c;
INSERT INTO supporters (fingerprint, campaign_id, action_page_id, source_id, first_name, email,
                        area, processing_status, email_status, inserted_at, updated_at)
VALUES (sha256(convert_to(:client_id || '-' || :n9 || '-' || clock_timestamp(), 'UTF8')),
        :campaign, :page, :source, 'Ann', 'pg' || :client_id || '-' || :n9 || '@bench.example.org',
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
WITH person AS (
  INSERT INTO counter_people (campaign_id, fingerprint, area, prev_area, seen)
  VALUES (:campaign, sha256(convert_to(:client_id || '-' || :n9 || '-c9', 'UTF8')), 'FR', NULL, 1)
  ON CONFLICT (campaign_id, fingerprint) DO UPDATE
  SET prev_area = counter_people.area, area = COALESCE(excluded.area, counter_people.area),
      seen = counter_people.seen + 1
  RETURNING seen, prev_area, area
), org_person AS (
  INSERT INTO counter_org_people (campaign_id, org_id, fingerprint)
  VALUES (:campaign, :org, sha256(convert_to(:client_id || '-' || :n9 || '-c9', 'UTF8')))
  ON CONFLICT DO NOTHING
  RETURNING 1
), change AS (
  SELECT CASE WHEN p.seen = 1 THEN 1 ELSE 0 END AS supporters,
         (SELECT count(*) FROM org_person) AS org_supporters,
         CASE WHEN p.area IS NOT NULL AND (p.prev_area IS NULL OR p.prev_area <> p.area)
              THEN p.area END AS gained,
         CASE WHEN p.prev_area IS NOT NULL AND p.prev_area <> p.area
              THEN p.prev_area END AS left_area
  FROM person AS p
)
INSERT INTO counter_deltas (campaign_id, action_type, actions, supporters, org_id,
                            org_supporters, area, area_supporters, left_area)
SELECT :campaign, 'petition', 1, c.supporters, :org, c.org_supporters,
       c.gained, CASE WHEN c.gained IS NULL THEN 0 ELSE 1 END, c.left_area
FROM change AS c;
COMMIT;
