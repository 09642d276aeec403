"""The basic-minimum-needs indicators (จปฐ.) and the five TPMAP dimensions, kept as data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Dimension(StrEnum):
    health = "health"
    living = "living"
    education = "education"
    income = "income"
    public_access = "public_access"


@dataclass(frozen=True, slots=True)
class Indicator:
    set_version: str
    number: int
    dimension: Dimension
    name_th: str
    name_en: str

    @property
    def code(self) -> str:
        """A code that stays unique when a later indicator set is added beside this one."""
        return f"{self.set_version}-{self.number:02d}"


SET_2560 = "2560"

INDICATORS: tuple[Indicator, ...] = (
    Indicator(
        SET_2560,
        1,
        Dimension.health,
        "เด็กแรกเกิดมีน้ำหนัก 2,500 กรัมขึ้นไป",
        "Newborns weigh at least 2,500 g",
    ),
    Indicator(
        SET_2560,
        4,
        Dimension.health,
        "ครัวเรือนกินอาหารถูกสุขลักษณะ ปลอดภัย",
        "The household eats hygienic, safe food",
    ),
    Indicator(
        SET_2560,
        5,
        Dimension.health,
        "ครัวเรือนมีการใช้ยาเพื่อบำบัดบรรเทาอาการเจ็บป่วยเบื้องต้นอย่างเหมาะสม",
        "Medicine is used properly for basic illness",
    ),
    Indicator(
        SET_2560,
        7,
        Dimension.health,
        "คนอายุ 6 ปีขึ้นไปออกกำลังกายอย่างน้อยสัปดาห์ละ 3 วัน วันละ 30 นาที",
        "People aged 6+ exercise at least 3 days a week, 30 minutes a day",
    ),
    Indicator(
        SET_2560,
        8,
        Dimension.living,
        "ครัวเรือนมีความมั่นคงในที่อยู่อาศัย และบ้านมีสภาพคงทนถาวร",
        "Secure tenure and a durable house",
    ),
    Indicator(
        SET_2560,
        9,
        Dimension.living,
        "ครัวเรือนมีน้ำสะอาดสำหรับดื่มและบริโภคเพียงพอตลอดปี อย่างน้อยคนละ 5 ลิตรต่อวัน",
        "Clean drinking water of at least 5 L a person a day all year",
    ),
    Indicator(
        SET_2560,
        10,
        Dimension.living,
        "ครัวเรือนมีน้ำใช้เพียงพอตลอดปี อย่างน้อยคนละ 45 ลิตรต่อวัน",
        "Water for use of at least 45 L a person a day all year",
    ),
    Indicator(
        SET_2560,
        11,
        Dimension.living,
        "ครัวเรือนมีการจัดการบ้านเรือนเป็นระเบียบเรียบร้อย สะอาด และถูกสุขลักษณะ",
        "A tidy, clean and hygienic home",
    ),
    Indicator(
        SET_2560,
        15,
        Dimension.education,
        "เด็กอายุ 3-5 ปี ได้รับบริการเลี้ยงดูเตรียมความพร้อมก่อนวัยเรียน",
        "Children aged 3-5 get pre-school care",
    ),
    Indicator(
        SET_2560,
        16,
        Dimension.education,
        "เด็กอายุ 6-14 ปี ได้รับการศึกษาภาคบังคับ 9 ปี",
        "Children aged 6-14 get the 9 years of compulsory schooling",
    ),
    Indicator(
        SET_2560,
        17,
        Dimension.education,
        "เด็กจบชั้น ม.3 ได้เรียนต่อชั้น ม.4 หรือเทียบเท่า",
        "Lower-secondary graduates go on to upper secondary or equivalent",
    ),
    Indicator(
        SET_2560,
        19,
        Dimension.education,
        "คนอายุ 15-59 ปี อ่าน เขียนภาษาไทย และคิดเลขอย่างง่ายได้",
        "People aged 15-59 read and write Thai and do simple sums",
    ),
    Indicator(
        SET_2560,
        20,
        Dimension.income,
        "คนอายุ 15-59 ปี มีอาชีพและมีรายได้",
        "People aged 15-59 have an occupation and income",
    ),
    Indicator(
        SET_2560,
        21,
        Dimension.income,
        "คนอายุ 60 ปีขึ้นไป มีอาชีพและมีรายได้",
        "People aged 60+ have an occupation and income",
    ),
    Indicator(
        SET_2560,
        22,
        Dimension.income,
        "รายได้เฉลี่ยของคนในครัวเรือนต่อปี",
        "Average income a person a year is above the survey's line",
    ),
    Indicator(
        SET_2560,
        27,
        Dimension.public_access,
        "ผู้สูงอายุ ได้รับการดูแลจากคนในครัวเรือน ชุมชน ภาครัฐ หรือภาคเอกชน",
        "The elderly are cared for",
    ),
    Indicator(
        SET_2560,
        28,
        Dimension.public_access,
        "ผู้พิการ ได้รับการดูแลจากคนในครัวเรือน ชุมชน ภาครัฐ หรือภาคเอกชน",
        "Disabled people are cared for",
    ),
)

INDICATORS_BY_CODE: dict[str, Indicator] = {i.code: i for i in INDICATORS}


def dimensions_of(codes: list[str]) -> list[Dimension]:
    """The dimensions that a list of failed indicator codes touch, in the canonical order."""
    touched = {INDICATORS_BY_CODE[c].dimension for c in codes if c in INDICATORS_BY_CODE}
    return [d for d in Dimension if d in touched]


class LifeStage(StrEnum):
    """Age groups the indicators use."""

    early_childhood = "early_childhood"
    school_age = "school_age"
    working_age = "working_age"
    elderly = "elderly"


def life_stage(birth_date: date | None, on: date | None = None) -> LifeStage | None:
    """The life stage of someone born on `birth_date`, on the day `on` (today by default)."""
    if birth_date is None:
        return None
    today = on or date.today()
    age = (
        today.year
        - birth_date.year
        - ((today.month, today.day) < (birth_date.month, birth_date.day))
    )
    if age <= 5:
        return LifeStage.early_childhood
    if age <= 14:
        return LifeStage.school_age
    if age <= 59:
        return LifeStage.working_age
    return LifeStage.elderly
