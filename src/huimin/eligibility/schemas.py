"""API shapes of residents."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool

__all__ = ["ResidentIn", "ResidentOut"]


class ResidentIn(BaseModel):
    """What the payment app knows of its user. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    app_user_id: str = Field(min_length=1, max_length=64, description="the app's own user id")
    real_name_verified: StrictBool = Field(description="the app has verified the real name (实名认证)")
    id_number: str = Field(
        min_length=15, max_length=24, description="居民身份证号码; stored only hashed and masked"
    )
    phone: str = Field(
        min_length=11, max_length=16, description="mobile number; stored only hashed and masked"
    )
    device_id: str = Field(min_length=1, max_length=128, description="the app's device identifier")


class ResidentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    resident_id: str
    app_user_id: str
    real_name_verified: bool
    id_number_masked: str
    phone_masked: str
    registered_at: datetime
