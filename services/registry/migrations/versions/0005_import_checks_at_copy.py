"""Imports: the checks of a row on its own run as the row is copied in; ids made without a syscall.

The staging template gains generated columns: a row's household key, its birth date as a date
and the reasons its own values are wrong. PostgreSQL computes them while COPY writes the row,
on its own core while the parser works on the next rows, so the checks after the upload only
look across rows (households, duplicates, what is stored).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_FLAG = "('', 'true', 'false', '1', '0', 'yes', 'no', 'y', 'n', 'ใช่', 'ไม่ใช่', 'มี', 'ไม่มี')"
_DECIMAL = r"'^-?[0-9]{1,3}(\.[0-9]+)?$'"

# One reason (or NULL) per column of the file, in the order of ROW_CHECKS in
# services/registry/imports/repository.py. Area existence and scope, indicator codes, a birth
# date in the future and everything that compares rows are checked after the upload.
_REASONS = f"""
nullif(ARRAY[
  CASE WHEN house_code <> '' AND NOT registry_digits(house_code, 11)
    THEN 'a house code has 11 digits' END,
  CASE
    WHEN house_code = '' AND household_key = ''
      THEN 'give a house_code, or a household_key where the house code is not known'
    WHEN length(household_key) > 100 THEN 'at most 100 characters' END,
  CASE
    WHEN area_code = '' THEN 'required'
    WHEN NOT (registry_digits(area_code, 6) OR registry_digits(area_code, 8))
      THEN 'a household lies in a village (8 digits) or a sub-district (6 digits)' END,
  CASE WHEN length(address) > 500 THEN 'at most 500 characters' END,
  CASE
    WHEN survey_year = '' THEN NULL
    WHEN NOT registry_digits(survey_year, 4) THEN 'a Buddhist-era year from 2500 to 2700'
    WHEN survey_year::int NOT BETWEEN 2500 AND 2700
      THEN 'a Buddhist-era year from 2500 to 2700' END,
  NULL,
  CASE
    WHEN lat = '' AND lon = '' THEN NULL
    WHEN lat = '' OR lon = '' THEN 'give both lat and lon, or neither'
    WHEN lat !~ {_DECIMAL} THEN 'a decimal number'
    WHEN lat::float8 NOT BETWEEN 5.6 AND 20.5 THEN 'a latitude inside Thailand' END,
  CASE
    WHEN lat = '' OR lon = '' THEN NULL
    WHEN lon !~ {_DECIMAL} THEN 'a decimal number'
    WHEN lon::float8 NOT BETWEEN 97.3 AND 105.7 THEN 'a longitude inside Thailand' END,
  CASE
    WHEN citizen_id = '' THEN NULL
    WHEN citizen_id_index IS NULL THEN 'a citizen ID has 13 digits'
    WHEN left(citizen_id, 1) = '0' THEN 'a citizen ID does not start with 0'
    WHEN NOT registry_check_digit_ok(citizen_id) THEN 'the check digit is wrong' END,
  CASE WHEN length(title) > 50 THEN 'at most 50 characters' END,
  CASE WHEN first_name = '' THEN 'required'
       WHEN length(first_name) > 200 THEN 'at most 200 characters' END,
  CASE WHEN last_name = '' THEN 'required'
       WHEN length(last_name) > 200 THEN 'at most 200 characters' END,
  CASE WHEN lower(sex) IN ('', 'male', 'female', 'm', 'f', 'ชาย', 'หญิง') THEN NULL
       ELSE 'male or female (ชาย or หญิง)' END,
  CASE WHEN birth_date <> '' AND registry_date(birth_date) IS NULL
    THEN 'a date as YYYY-MM-DD' END,
  CASE WHEN length(relation) > 50 THEN 'at most 50 characters' END,
  CASE WHEN lower(disability) IN {_FLAG} THEN NULL ELSE 'true or false' END,
  CASE WHEN lower(welfare_card) IN {_FLAG} THEN NULL ELSE 'true or false' END
], '{{NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL}}')
"""


# Regular expressions cost about 2.5 µs a row here; these plain string functions a tenth of it.
_FUNCTIONS = (
    """
CREATE FUNCTION registry_digits(d text, n int) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT octet_length(d) = n AND ltrim(d, '0123456789') = '' $$
""",
    """
-- The check digit of 13 ASCII digits (shared/thai.py says the same in Python).
CREATE FUNCTION registry_check_digit_ok(d text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (11 - (substr(d, 1, 1)::int * 13 + substr(d, 2, 1)::int * 12
    + substr(d, 3, 1)::int * 11 + substr(d, 4, 1)::int * 10 + substr(d, 5, 1)::int * 9
    + substr(d, 6, 1)::int * 8 + substr(d, 7, 1)::int * 7 + substr(d, 8, 1)::int * 6
    + substr(d, 9, 1)::int * 5 + substr(d, 10, 1)::int * 4 + substr(d, 11, 1)::int * 3
    + substr(d, 12, 1)::int * 2) % 11) % 10 = substr(d, 13, 1)::int
$$
""",
    """
-- YYYY-MM-DD as a date, years 1880 to 2999; NULL when it is not a real calendar date.
CREATE FUNCTION registry_date(d text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN octet_length(d) = 10 AND substr(d, 5, 1) = '-' AND substr(d, 8, 1) = '-'
         AND ltrim(substr(d, 1, 4) || substr(d, 6, 2) || substr(d, 9, 2), '0123456789') = ''
         AND substr(d, 1, 4)::int BETWEEN 1880 AND 2999
         AND substr(d, 6, 2)::int BETWEEN 1 AND 12
         AND substr(d, 9, 2)::int BETWEEN 1 AND CASE substr(d, 6, 2)::int
               WHEN 2 THEN CASE WHEN substr(d, 1, 4)::int % 4 = 0
                                 AND (substr(d, 1, 4)::int % 100 <> 0
                                      OR substr(d, 1, 4)::int % 400 = 0) THEN 29 ELSE 28 END
               WHEN 4 THEN 30 WHEN 6 THEN 30 WHEN 9 THEN 30 WHEN 11 THEN 30
               ELSE 31 END
    THEN make_date(substr(d, 1, 4)::int, substr(d, 6, 2)::int, substr(d, 9, 2)::int) END
$$
""",
)


def upgrade() -> None:
    for function in _FUNCTIONS:
        op.execute(function)
    op.execute(f"""
        ALTER TABLE import_stage
          ADD COLUMN gkey text GENERATED ALWAYS AS (
            CASE WHEN house_code <> '' THEN 'h' || house_code
                 WHEN household_key <> '' THEN 'k' || household_key
                 ELSE 'l' || line END) STORED,
          ADD COLUMN birth date GENERATED ALWAYS AS (registry_date(birth_date)) STORED,
          ADD COLUMN reasons text[] GENERATED ALWAYS AS ({_REASONS}) STORED
    """)
    # The id of the n-th row of a kind (household, person, …) an import makes: a UUIDv7 whose
    # first 80 bits (time and random) are the import's own and whose last 48 bits count. The
    # server's random source costs a system call per uuidv7() (about 6 µs here); a million
    # households with their persons, history and events need 7 million ids.
    op.execute("""
        CREATE FUNCTION registry_import_id(prefix text, kind int, n bigint) RETURNS uuid
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT (prefix || to_hex((1::bigint << 47) | (kind::bigint << 40) | n))::uuid $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION registry_import_id(text, int, bigint)")
    op.execute("ALTER TABLE import_stage DROP COLUMN reasons, DROP COLUMN birth, DROP COLUMN gkey")
    op.execute("DROP FUNCTION registry_date(text)")
    op.execute("DROP FUNCTION registry_check_digit_ok(text)")
    op.execute("DROP FUNCTION registry_digits(text, int)")
