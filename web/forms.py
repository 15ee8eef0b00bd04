"""Forms of the students' pages (the booking form posts JSON to the API instead)."""

from django import forms

from booking.services.guests import EMAIL_MAX, NAME_MAX


class JoinCodeForm(forms.Form):
    code = forms.CharField(
        label="Access code",
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class GuestForm(forms.Form):
    first_name = forms.CharField(
        label="First name",
        max_length=NAME_MAX,
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    last_name = forms.CharField(
        label="Last name",
        max_length=NAME_MAX,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    email = forms.EmailField(
        label="E-mail address",
        max_length=EMAIL_MAX,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )


class LookupForm(forms.Form):
    reference = forms.CharField(
        label="Booking reference",
        max_length=20,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"}
        ),
    )
    last_name = forms.CharField(
        label="Last name",
        max_length=NAME_MAX,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
