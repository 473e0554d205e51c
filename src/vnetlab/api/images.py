"""The Marketplace image and VM size look-ups ``az vm create`` makes before it creates anything.

vnetlab runs no guest image: a VM is its NIC and the services it listens on. But ``az vm create
--image Ubuntu2204`` resolves the alias to a URN, asks for the image's latest version and its
properties (generation, architecture, security features), and the size catalogue, so these are
answered from a small catalogue: the images of az's own alias document.
https://learn.microsoft.com/rest/api/compute/virtual-machine-images
https://learn.microsoft.com/rest/api/compute/virtual-machine-sizes/list
https://github.com/Azure/azure-rest-api-specs/blob/main/arm-compute/quickstart-templates/aliases.json
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from ..model.errors import AzureError, NotFound
from .arm import ArmError, Call, Router, json_response
from .discovery import normalize_location


@dataclass(frozen=True)
class Image:
    alias: str
    publisher: str
    offer: str
    sku: str
    os: str                    # Linux or Windows
    generation: str = "V2"     # hyperVGeneration
    architecture: str = "x64"
    version: str = "1.0.0"


IMAGES = (
    Image("Ubuntu2204", "Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2", "Linux",
          version="22.04.202411010"),
    Image("Ubuntu2404", "Canonical", "ubuntu-24_04-lts", "server", "Linux", version="24.04.202411030"),
    Image("Debian11", "Debian", "debian-11", "11-backports-gen2", "Linux", version="0.20241111.1928"),
    Image("RHELRaw8LVMGen2", "RedHat", "RHEL", "8-lvm-gen2", "Linux", version="8.10.2024101011"),
    Image("CentOS85Gen2", "OpenLogic", "CentOS", "8_5-gen2", "Linux", version="8.5.2022101801"),
    Image("OpenSuseLeap154Gen2", "SUSE", "openSUSE-leap-15-4", "gen2", "Linux", version="2024.02.07"),
    Image("SuseSles15SP3", "SUSE", "sles-15-sp3", "gen2", "Linux", version="2024.02.07"),
    Image("FlatcarLinuxFreeGen2", "kinvolk", "flatcar-container-linux-free", "stable-gen2", "Linux",
          version="3975.2.2"),
    Image("AzureLinux4", "microsoftazurelinux", "azurelinux-4", "4", "Linux", version="4.0.20250601"),
    Image("Win2022Datacenter", "MicrosoftWindowsServer", "WindowsServer", "2022-datacenter-g2", "Windows",
          version="20348.2849.241109"),
    Image("Win2022AzureEditionCore", "MicrosoftWindowsServer", "WindowsServer",
          "2022-datacenter-azure-edition-core", "Windows", version="20348.2849.241109"),
    Image("Win2019Datacenter", "MicrosoftWindowsServer", "WindowsServer", "2019-datacenter-gensecond", "Windows",
          version="17763.6532.241109"),
    Image("Win2016Datacenter", "MicrosoftWindowsServer", "WindowsServer", "2016-datacenter-gensecond", "Windows",
          version="14393.7515.241109"),
)

# name, cores, memory MB, max data disks, resource disk MB
# https://learn.microsoft.com/azure/virtual-machines/sizes/general-purpose/bv1-series
SIZES = (
    ("Standard_B1ls", 1, 512, 2, 4096), ("Standard_B1s", 1, 1024, 2, 4096), ("Standard_B1ms", 1, 2048, 2, 4096),
    ("Standard_B2s", 2, 4096, 4, 8192), ("Standard_B2ms", 2, 8192, 4, 16384), ("Standard_B4ms", 4, 16384, 8, 32768),
    ("Standard_D2s_v3", 2, 8192, 4, 16384), ("Standard_D4s_v3", 4, 16384, 8, 32768),
    ("Standard_D2s_v5", 2, 8192, 4, 0), ("Standard_D4s_v5", 4, 16384, 8, 0),
    ("Standard_DS1_v2", 1, 3584, 4, 7168), ("Standard_DS2_v2", 2, 7168, 8, 14336),
    ("Standard_F2s_v2", 2, 4096, 4, 16384),
)


def size_names() -> list[str]:
    return [s[0] for s in SIZES]


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def find_images(publisher: str | None = None, offer: str | None = None, sku: str | None = None) -> list[Image]:
    return [i for i in IMAGES if (publisher is None or _same(i.publisher, publisher))
            and (offer is None or _same(i.offer, offer)) and (sku is None or _same(i.sku, sku))]


def _location(call: Call) -> str:
    loc = normalize_location(call.params["loc"])
    if loc is None:
        raise ArmError(404, "NoRegisteredProviderFound", f"No registered resource provider found for location "
                                                         f"'{call.params['loc']}'.")
    return loc


def _base(call: Call, loc: str) -> str:
    return f"/Subscriptions/{call.subscription}/Providers/Microsoft.Compute/Locations/{loc}"


def _not_found(what: str) -> AzureError:
    return NotFound(f"Artifact: {what} was not found.")


def _names(call: Call, loc: str, kind: str, names: list[str], path: str) -> Response:
    """The bare array of VirtualMachineImageResource that the list operations answer."""
    prefix = _base(call, loc) + (f"/{path}" if path else "")
    return json_response([{"location": loc, "name": n, "id": f"{prefix}/{kind}/{n}"}
                          for n in dict.fromkeys(names)])


def list_publishers(call: Call) -> Response:
    loc = _location(call)
    return _names(call, loc, "Publishers", [i.publisher for i in IMAGES], "")


def list_offers(call: Call) -> Response:
    loc, p = _location(call), call.params
    images = find_images(p["publisher"])
    if not images:
        raise _not_found(f"VMImage publisher {p['publisher']}")
    return _names(call, loc, "Offers", [i.offer for i in images],
                  f"Publishers/{images[0].publisher}/ArtifactTypes/VMImage")


def list_skus(call: Call) -> Response:
    loc, p = _location(call), call.params
    images = find_images(p["publisher"], p["offer"])
    if not images:
        raise _not_found(f"VMImage offer {p['publisher']}:{p['offer']}")
    i = images[0]
    return _names(call, loc, "Skus", [i.sku for i in images],
                  f"Publishers/{i.publisher}/ArtifactTypes/VMImage/Offers/{i.offer}")


def _image(call: Call) -> Image:
    p = call.params
    images = find_images(p["publisher"], p["offer"], p["sku"])
    if not images:
        raise _not_found(f"VMImage {p['publisher']}:{p['offer']}:{p['sku']}")
    return images[0]


def _sku_path(i: Image) -> str:
    return f"Publishers/{i.publisher}/ArtifactTypes/VMImage/Offers/{i.offer}/Skus/{i.sku}"


def list_versions(call: Call) -> Response:
    loc, image = _location(call), _image(call)
    return _names(call, loc, "Versions", [image.version], _sku_path(image))


def get_version(call: Call) -> Response:
    loc, image = _location(call), _image(call)
    version = call.params["version"]
    if version.lower() not in ("latest", image.version):
        raise _not_found(f"VMImage {image.publisher}:{image.offer}:{image.sku}:{version}")
    features = [{"name": "SecurityType", "value": "TrustedLaunchSupported"},
                {"name": "IsAcceleratedNetworkSupported", "value": "True"},
                {"name": "DiskControllerTypes", "value": "SCSI, NVMe"},
                {"name": "IsHibernateSupported", "value": "True"}]
    return json_response({
        "name": image.version, "location": loc,
        "id": f"{_base(call, loc)}/{_sku_path(image)}/Versions/{image.version}",
        "properties": {"osDiskImage": {"operatingSystem": image.os, "sizeInGb": 30}, "dataDiskImages": [],
                       "automaticOSUpgradeProperties": {"automaticOSUpgradeSupported": False},
                       "hyperVGeneration": image.generation, "architecture": image.architecture,
                       "disallowed": {"vmDiskType": "None"}, "features": features,
                       "imageDeprecationStatus": {"imageState": "Active"}}})


def list_sizes(call: Call) -> Response:
    _location(call)
    return json_response({"value": [
        {"name": name, "numberOfCores": cores, "osDiskSizeInMB": 1047552, "resourceDiskSizeInMB": disk,
         "memoryInMB": memory, "maxDataDiskCount": disks} for name, cores, memory, disks, disk in SIZES]})


def alias_doc(call: Call) -> Response:
    """The alias document the cloud's ``vmImageAliasDoc`` endpoint points at (``az vm image list``)."""
    aliases: dict[str, dict] = {"Linux": {}, "Windows": {}}
    for i in IMAGES:
        aliases[i.os][i.alias] = {"publisher": i.publisher, "offer": i.offer, "sku": i.sku, "version": "latest",
                                  "architecture": i.architecture}
    return json_response({"$schema": "http://schema.management.azure.com/schemas/2015-01-01/deploymentTemplate.json",
                          "contentVersion": "1.0.0.0", "parameters": {}, "variables": {}, "resources": [],
                          "outputs": {"aliases": {"type": "object", "value": aliases}}})


def router() -> Router:
    r = Router()
    loc = "subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}"
    r.add("GET", f"{loc}/vmSizes", list_sizes)
    r.add("GET", f"{loc}/publishers", list_publishers)
    pub = f"{loc}/publishers/{{publisher}}/artifacttypes/vmimage"
    r.add("GET", f"{pub}/offers", list_offers)
    r.add("GET", f"{pub}/offers/{{offer}}/skus", list_skus)
    r.add("GET", f"{pub}/offers/{{offer}}/skus/{{sku}}/versions", list_versions)
    r.add("GET", f"{pub}/offers/{{offer}}/skus/{{sku}}/versions/{{version}}", get_version)
    r.add("GET", "vmImageAliasDoc", alias_doc, auth=False)
    return r
