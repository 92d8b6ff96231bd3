"""Every check the linter runs: stable id, default severity, what it means and how to fix it.
docs/lint.md documents each one (a test keeps the two in step)."""

from __future__ import annotations

from mainstem.plans.lint.findings import Check, Severity

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

DYNAMIC_EVENT_NAME = Check(
    "dynamic-event-name", E, "Event name is not a string literal",
    "Call track() with a literal name (one per call site) and put the variable part in a "
    "property, so the name can be checked against the plan and counted in reports.",
)  # fmt: skip
EVENT_NAME_CASING = Check(
    "event-name-casing", W, "Event name cased unlike the codebase's other events",
    "Rename the event to the casing most events use (Segment recommends \"Object Action\" in "
    "Title Case, e.g. \"Order Completed\").",
)  # fmt: skip
CONVERSION_WITHOUT_IDENTIFY = Check(
    "conversion-without-identify", W, "Revenue or conversion event with no identify in the file",
    "Call identify(userId, traits) before the conversion (or pass userId on a server call) so "
    "revenue is attributed to a known user, not an anonymous visitor.",
)  # fmt: skip
LOGOUT_WITHOUT_RESET = Check(
    "logout-without-reset", W, "Logout without analytics.reset()",
    "Call analytics.reset() when the user logs out, or analytics.js keeps their userId and "
    "traits and the next person on the device is tracked as them.",
)  # fmt: skip
HARDCODED_WRITE_KEY = Check(
    "hardcoded-write-key", E, "Write key hard-coded in source",
    "Read the write key from configuration (process.env.SEGMENT_WRITE_KEY, "
    "os.environ[\"SEGMENT_WRITE_KEY\"], or your build's env injection) and rotate the exposed "
    "key.",
)  # fmt: skip
PII_WITHOUT_INTEGRATIONS = Check(
    "pii-without-integrations", W, "PII sent to every destination",
    "Pass integrations (e.g. {All: false, \"Mainstem Warehouse\": true}) so the personal data "
    "goes only to destinations allowed to hold it, or hash/drop the field.",
)  # fmt: skip
SERVER_TRACK_WITHOUT_TIMESTAMP = Check(
    "server-track-without-timestamp", INFO, "Server-side track without an explicit timestamp",
    "Pass timestamp= the time the action happened; without it the library stamps the time of "
    "the call, which is wrong for queued, batched or replayed work.",
)  # fmt: skip
LARGE_PROPERTY_VALUE = Check(
    "large-property-value", W, "Property value that can be very large",
    "Send the few fields you need (or an id), not a serialized object, request body or page "
    "content: Segment rejects messages over 32 KB and warehouses truncate wide columns.",
)  # fmt: skip
TRACK_BEFORE_CONSENT = Check(
    "track-before-consent", E, "Tracking before the consent check",
    "Move the call after the consent check (or inside its branch), so nothing is sent before "
    "the user has agreed.",
)  # fmt: skip
UNPLANNED_EVENT = Check(
    "unplanned-event", E, "Event not in the tracking plan",
    "Use the planned name (the message suggests the nearest one) or add the event to the plan.",
    needs_plan=True,
)  # fmt: skip
MISSING_REQUIRED_PROPERTY = Check(
    "missing-required-property", E, "Required property missing at the call site",
    "Add the property to the call's properties object.",
    needs_plan=True,
)  # fmt: skip
PROPERTY_TYPE_MISMATCH = Check(
    "property-type-mismatch", E, "Literal property value of a type the plan does not allow",
    "Send the planned type (e.g. a number, not a string of digits) or change the plan.",
    needs_plan=True,
)  # fmt: skip
UNPLANNED_PROPERTY = Check(
    "unplanned-property", W, "Property not in the tracking plan",
    "Remove the property, fix its spelling, or add it to the plan.",
    needs_plan=True,
)  # fmt: skip

CHECKS: dict[str, Check] = {
    check.id: check
    for check in (
        DYNAMIC_EVENT_NAME,
        EVENT_NAME_CASING,
        CONVERSION_WITHOUT_IDENTIFY,
        LOGOUT_WITHOUT_RESET,
        HARDCODED_WRITE_KEY,
        PII_WITHOUT_INTEGRATIONS,
        SERVER_TRACK_WITHOUT_TIMESTAMP,
        LARGE_PROPERTY_VALUE,
        TRACK_BEFORE_CONSENT,
        UNPLANNED_EVENT,
        MISSING_REQUIRED_PROPERTY,
        PROPERTY_TYPE_MISMATCH,
        UNPLANNED_PROPERTY,
    )
}
