"""Password hashing (bcrypt), policy, and generated strong passwords."""

from __future__ import annotations

import secrets
import string

import bcrypt

MIN_LENGTH = 12
MAX_LENGTH = 80
SYMBOLS = "!?@#$%^&*_"


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def verify_password(password: str, hashed: str | None) -> bool:
    if not hashed or not hashed.startswith("$2"):
        return False
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:
        return False


def password_problems(password: str) -> list[str]:
    """What the password policy (spec §3.3) finds wrong; empty when the password is fine."""
    problems = []
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        problems.append(f"should be {MIN_LENGTH} to {MAX_LENGTH} characters")
    if not any(c.islower() for c in password):
        problems.append("at least one lower case character")
    if not any(c.isupper() for c in password):
        problems.append("at least one upper case character")
    if not any(c.isdigit() or c in SYMBOLS for c in password):
        problems.append("at least one digit or punctuation character")
    return problems


def generate_password() -> str:
    """16 letters, 4 digits and 2 symbols, shuffled."""
    chars = (
        [secrets.choice(string.ascii_letters) for _ in range(14)]
        + [secrets.choice(string.ascii_lowercase), secrets.choice(string.ascii_uppercase)]
        + [secrets.choice(string.digits) for _ in range(4)]
        + [secrets.choice(SYMBOLS) for _ in range(2)]
    )
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)
