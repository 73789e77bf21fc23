"""Column names of the stored tables (the last column of each is the target).

Names follow the upstream documentation (UCI ``.names`` files, KEEL headers).
"""

from __future__ import annotations

ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country", "income",
)
ADULT_CATEGORICAL = frozenset({
    "workclass", "education", "marital-status", "occupation", "relationship", "race",
    "sex", "native-country", "income",
})

WISCONSIN_COLUMNS = (
    "clump_thickness", "cell_size_uniformity", "cell_shape_uniformity",
    "marginal_adhesion", "single_epithelial_cell_size", "bare_nuclei", "bland_chromatin",
    "normal_nucleoli", "mitoses", "class",
)

PIMA_COLUMNS = (
    "pregnancies", "glucose", "blood_pressure", "skin_thickness", "insulin", "bmi",
    "diabetes_pedigree", "age", "class",
)

CONTRACEPTIVE_COLUMNS = (
    "wife_age", "wife_education", "husband_education", "children", "wife_religion",
    "wife_working", "husband_occupation", "standard_of_living", "media_exposure", "method",
)
CONTRACEPTIVE_NUMERIC = frozenset({"wife_age", "children"})

GERMAN_COLUMNS = (
    "checking_status", "duration", "credit_history", "purpose", "credit_amount",
    "savings", "employment_since", "installment_rate", "personal_status_sex",
    "other_debtors", "residence_since", "property", "age", "other_installment_plans",
    "housing", "existing_credits", "job", "people_liable", "telephone", "foreign_worker",
    "class",
)
GERMAN_NUMERIC = frozenset({
    "duration", "credit_amount", "installment_rate", "residence_since", "age",
    "existing_credits", "people_liable",
})

MUSHROOM_COLUMNS = (
    "cap-shape", "cap-surface", "cap-color", "bruises", "odor", "gill-attachment",
    "gill-spacing", "gill-size", "gill-color", "stalk-shape", "stalk-root",
    "stalk-surface-above-ring", "stalk-surface-below-ring", "stalk-color-above-ring",
    "stalk-color-below-ring", "veil-type", "veil-color", "ring-number", "ring-type",
    "spore-print-color", "population", "habitat", "class",
)

_SPAM_WORDS = (
    "make", "address", "all", "3d", "our", "over", "remove", "internet", "order", "mail",
    "receive", "will", "people", "report", "addresses", "free", "business", "email", "you",
    "credit", "your", "font", "000", "money", "hp", "hpl", "george", "650", "lab", "labs",
    "telnet", "857", "data", "415", "85", "technology", "1999", "parts", "pm", "direct",
    "cs", "meeting", "original", "project", "re", "edu", "table", "conference",
)
SPAMBASE_COLUMNS = (
    tuple(f"word_freq_{w}" for w in _SPAM_WORDS)
    + tuple(f"char_freq_{c}" for c in ";([!$#")
    + ("capital_run_length_average", "capital_run_length_longest",
       "capital_run_length_total", "spam")
)

MARKETING_COLUMNS = (
    "sex", "marital_status", "age", "education", "occupation", "years_in_sf",
    "dual_income", "household_members", "under_18", "householder_status", "type_of_home",
    "ethnic_class", "language", "income",
)
