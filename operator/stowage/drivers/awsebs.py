"""awsElasticBlockStore: Amazon EBS volumes through the CSI driver ebs.csi.aws.com."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from stowage.api.backend import AwsElasticBlockStoreSpec, EbsVolumeType, FsType, StorageType
from stowage.drivers.base import BackendRef, Problem
from stowage.drivers.csi import CloudCsiDriver, ExistingDisk, existing_volume_disks

VOLUME_ID = re.compile(r"^vol-[0-9a-f]{8,17}$")
TYPES_REQUIRING_IOPS = (EbsVolumeType.IO1, EbsVolumeType.IO2)


class AwsElasticBlockStoreDriver(CloudCsiDriver[AwsElasticBlockStoreSpec]):
    storage_type: ClassVar[StorageType] = StorageType.AWS_ELASTIC_BLOCK_STORE
    spec_model = AwsElasticBlockStoreSpec
    csi_driver: ClassVar[str] = "ebs.csi.aws.com"

    def validate_type(self, backend: BackendRef) -> list[Problem]:
        spec = self.type_spec(backend)
        problems = [
            Problem(
                f"awsElasticBlockStore.existingVolumes[{index}].volumeID",
                "is not an EBS volume ID (vol- and 8 or 17 hexadecimal digits)",
            )
            for index, volume in enumerate(spec.existing_volumes)
            if not VOLUME_ID.match(volume.volume_id)
        ]
        if spec.type in TYPES_REQUIRING_IOPS and spec.iops is None:
            problems.append(
                Problem("awsElasticBlockStore.iops", f"is required for the type {spec.type}")
            )
        return problems

    def csi_parameters(self, backend: BackendRef) -> dict[str, str]:
        spec = self.type_spec(backend)
        optional = {
            "iops": None if spec.iops is None else str(spec.iops),
            "throughput": None if spec.throughput is None else str(spec.throughput),
            "kmsKeyId": spec.kms_key_id,
        }
        return {
            "type": spec.type.value,
            "encrypted": "true" if spec.encrypted else "false",
            **{key: value for key, value in optional.items() if value is not None},
        }

    def fs_type(self, backend: BackendRef) -> FsType:
        return self.type_spec(backend).fs_type

    def existing_disks(self, backend: BackendRef) -> Sequence[ExistingDisk]:
        return existing_volume_disks(self.type_spec(backend).existing_volumes)
