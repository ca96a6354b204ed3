"""One driver per storage type, behind the `Driver` protocol of `stowage.drivers.base`."""

from __future__ import annotations

from types import MappingProxyType

from stowage.api.backend import StorageType
from stowage.drivers.awsebs import AwsElasticBlockStoreDriver
from stowage.drivers.base import Driver
from stowage.drivers.cephfs import CephfsDriver
from stowage.drivers.cifs import CifsDriver
from stowage.drivers.cinder import CinderDriver
from stowage.drivers.emptydir import EmptyDirDriver
from stowage.drivers.gcepd import GcePersistentDiskDriver
from stowage.drivers.gitrepo import GitRepoDriver
from stowage.drivers.glusterfs import GlusterfsDriver
from stowage.drivers.hostpath import HostPathDriver
from stowage.drivers.iscsi import IscsiDriver
from stowage.drivers.lvm import LvmDriver
from stowage.drivers.nfs import NfsDriver
from stowage.drivers.rbd import RbdDriver

_DRIVERS: tuple[Driver, ...] = (
    EmptyDirDriver(),
    HostPathDriver(),
    GitRepoDriver(),
    GcePersistentDiskDriver(),
    AwsElasticBlockStoreDriver(),
    CinderDriver(),
    NfsDriver(),
    IscsiDriver(),
    GlusterfsDriver(),
    RbdDriver(),
    CephfsDriver(),
    CifsDriver(),
    LvmDriver(),
)
DRIVERS = MappingProxyType({driver.storage_type: driver for driver in _DRIVERS})


def driver_for(storage_type: StorageType) -> Driver:
    return DRIVERS[storage_type]


__all__ = ["DRIVERS", "Driver", "driver_for"]
