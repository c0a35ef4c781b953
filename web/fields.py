"""Form fields for the session endpoints, which answer in the API's error shape.

The page's script shows the API's words for a mistake, so these fields check a value as the
API checks the same parameter and say so in the same words: a field left out is "required",
an empty one "blank", and a number out of range names its limit. A field left out (or, for a
number, left empty) takes its default, as leaving it out of an API call does.
"""

import math
from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import ProhibitNullCharactersValidator

# Longer strings are refused before parsing them as a number.
MAX_NUMBER_CHARS = 1000


class TextField(forms.Field):
    """Text, trimmed unless `trim` is off. How a form sends nothing decides what it means:
    `empty_is_missing`, an empty value counts as left out (a form that sends every field,
    emptied or not); `missing_is_empty`, a field left out counts as sent empty."""

    default_error_messages = {
        "required": "This field is required.",
        "blank": "This field may not be blank.",
        "max_length": "Ensure this field has no more than {max_length} characters.",
    }
    default_validators = [ProhibitNullCharactersValidator()]

    def __init__(
        self,
        *,
        max_length: int,
        required: bool = True,
        trim: bool = True,
        allow_blank: bool = False,
        empty_is_missing: bool = False,
        missing_is_empty: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(required=required, **kwargs)
        self.max_length = max_length
        self.trim = trim
        self.allow_blank = allow_blank
        self.empty_is_missing = empty_is_missing
        self.missing_is_empty = missing_is_empty

    def clean(self, value: Any) -> str:
        if value is None and self.missing_is_empty:
            value = ""
        if value is None or (self.empty_is_missing and value == ""):
            if self.required:
                raise ValidationError(self.error_messages["required"], code="required")
            return ""
        text = value.strip() if self.trim else value
        if not text:
            if not self.allow_blank:
                raise ValidationError(self.error_messages["blank"], code="blank")
            return ""
        if len(text) > self.max_length:
            message = self.error_messages["max_length"].format(max_length=self.max_length)
            raise ValidationError(message, code="max_length")
        self.run_validators(text)
        return text


class VoiceField(forms.Field):
    """A voice's name or id; `default` when left out."""

    default_validators = [ProhibitNullCharactersValidator()]

    def __init__(self, *, max_length: int, default: str, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)
        self.max_length = max_length
        self.default = default

    def clean(self, value: Any) -> str:
        if value is None:
            return self.default
        name = value.strip()
        if not name:
            raise ValidationError("A voice name cannot be empty.", code="blank")
        if len(name) > self.max_length:
            message = f"A voice name has at most {self.max_length} characters."
            raise ValidationError(message, code="max_length")
        self.run_validators(name)
        return name


class ChoiceField(forms.Field):
    """One of `choices`, as sent (not trimmed); `default` when left out."""

    def __init__(self, *, choices: Iterable[str], default: str, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)
        self.choices = tuple(choices)
        self.default = default

    def clean(self, value: Any) -> str:
        if value is None:
            return self.default
        if value not in self.choices:
            raise ValidationError(f'"{value}" is not a valid choice.', code="invalid_choice")
        return value


class NumberField(forms.Field):
    """A number of type `number` (int or float) within its limits; `default` when left out or
    left empty."""

    def __init__(
        self,
        *,
        number: type[int] | type[float],
        min_value: float | None = None,
        max_value: float | None = None,
        default: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(required=False, **kwargs)
        self.number = number
        self.min_value = min_value
        self.max_value = max_value
        self.default = default

    def clean(self, value: Any) -> float | None:
        if value is None or not value.strip():
            return self.default
        if len(value) > MAX_NUMBER_CHARS:
            raise ValidationError("String value too large.", code="max_string_length")
        parsed = self._parse(value)
        if self.max_value is not None and parsed > self.max_value:
            message = f"Ensure this value is less than or equal to {self.max_value}."
            raise ValidationError(message, code="max_value")
        if self.min_value is not None and parsed < self.min_value:
            message = f"Ensure this value is greater than or equal to {self.min_value}."
            raise ValidationError(message, code="min_value")
        return parsed

    def _parse(self, value: str) -> float:
        if self.number is int:
            try:
                # "7.0" is the whole number 7, as the API reads it.
                return int(forms.IntegerField.re_decimal.sub("", value))
            except ValueError:
                raise ValidationError("A valid integer is required.", code="invalid") from None
        try:
            parsed = float(value)
        except ValueError:
            parsed = math.nan
        if not math.isfinite(parsed):
            raise ValidationError("A valid number is required.", code="invalid")
        return parsed


class TickedField(forms.Field):
    """A checkbox: ticked when sent with any value (a browser sends "on")."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)

    def clean(self, value: Any) -> bool:
        return bool(value)


class UploadField(forms.FileField):
    """An uploaded file; without one, `missing` is the page's whole message."""

    def __init__(self, *, missing: str, **kwargs: Any) -> None:
        super().__init__(required=False, allow_empty_file=True, **kwargs)
        self.missing = missing

    def clean(self, data: Any, initial: Any = None) -> UploadedFile:
        if not data:
            # No code: the message is said to the user as it is, not as a field's problem.
            raise ValidationError(self.missing)
        return data
