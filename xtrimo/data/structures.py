"""The experimental structure sets shared by the folding head (training, held-out chains) and the contact
benchmark, registered in the data registry (public source, SHA-256 of each file)."""

from __future__ import annotations

from xtrimo.data.registry import REGISTRY, DatasetSpec, RemoteFile, register

_PFAM_URL = "https://raw.githubusercontent.com/Kortemme-Lab/covariation/e806290c96d08474e8043aff118f3568d526b2e7/input/domains/{}/{}.pdb"


def _pfam_url(name: str) -> str:
    """Direct URL of ``pdb/<PFAM>_<PDBID>_<CHAIN>.pdb`` (the file was only renamed)."""
    pfam, rest = name.removeprefix("pdb/").removesuffix(".pdb").split("_", 1)
    return _PFAM_URL.format(pfam, rest)


# dataset -> ((file, sha256), ...)
CHECKSUMS: dict[str, tuple[tuple[str, str], ...]] = {
    "structures_pfam_domains": (
        ("index.csv", "80d1db018095279111a4422b7ff03f614b0245a2760a8c1e87b3d7053a36502f"),
        ("sequences.fasta", "14f6f0d9a8fafac39861763e67a2c57023a91eee517edf220332269af3b623cb"),
        ("pdb/PF00072_1MVO_A.pdb", "ec21571151c5cea4c57b6641615e070c0f5718b659039eaf5b2c726d54e718b8"),
        ("pdb/PF00085_1FB0_A.pdb", "78335cc2c4894efa04489bf4dfcfcf51936563aaad6c231c325dd4ee7cd73d30"),
        ("pdb/PF00111_1CZP_A.pdb", "a77776910765dce8770a227cff5402950554260eb275bd93944c9ac55ad6f2ce"),
        ("pdb/PF00168_3F04_A.pdb", "bcff3e1196d63864b21854d1bfe1f4bff92d2cc375abe23c474a91ad820cad55"),
        ("pdb/PF00169_1UNQ_A.pdb", "5aaf522a7967fc40225cc3de75456f55dea14db4028bff14800c0c96f64040e9"),
        ("pdb/PF00179_1Z2U_A.pdb", "788ab67af2a1384adf52a28d9ff551fff80dc144ebe73e5409bff0bf694e8412"),
        ("pdb/PF00226_2O37_A.pdb", "a4eb45fd92e2fa07c931d6f3d2c71a02b1746f96092e99ee558896c29a5436e3"),
        ("pdb/PF00240_2BWF_A.pdb", "fb5b25c565722e0e1dd8edd6dff31d0da5ca2b138c9b58298a6ed90034c8478a"),
        ("pdb/PF00313_3I2Z_A.pdb", "82e36136898b1c670a912826654bef42b22ade02be0a5214d206493aadb809a0"),
        ("pdb/PF00327_1BXY_A.pdb", "b3e769912f76242e126d6cf79545bf6f7df47ff611cd8619a1d47714eb899e39"),
        ("pdb/PF00486_2ZXJ_A.pdb", "8499025ab8bc373ecc2c85fb4bf8446d283c4b0427a38311fd7692631d5cf028"),
        ("pdb/PF00498_3GQS_A.pdb", "e45d37a0fec9a0e779eee6d2e933eb31f20d368b0227155b358f9a173ba95ef7"),
        ("pdb/PF00542_1CTF_A.pdb", "592cf713dcfb6fb72ade1ade8607c488601a05d83e56b3d808aae09360492205"),
        ("pdb/PF00581_1GN0_A.pdb", "17c63ee45af08f574083a50fcf1bfd0c6bffa93ad49704b659bcb05af0b7f02d"),
        ("pdb/PF00595_2H3L_A.pdb", "35fe769eeb843c8816083fb3a9908e06269012da4ceefa9cb82718e5bb43fafd"),
        ("pdb/PF01833_3MQI_A.pdb", "a19e99626601a987a2d81ce464334f8c25ffe620e0467edd11bbc8abb0554fd6"),
        ("pdb/PF02823_1AQT_A.pdb", "6ac5bacfa0c14e9cf901884fc6c755f46d13d938429906ce695d235a14a4ce33"),
        ("pdb/PF07679_1U2H_A.pdb", "b99f58b046cf4bc5bc2187ae55b9112a649e28ad7baa23b1310ea8f220826773"),
        ("pdb/PF07686_2PND_A.pdb", "a95ab9de755d34261219c6dd557fa3c621bd87d28c683aae8334d88904b6b2f3"),
        ("pdb/PF12844_3FYM_A.pdb", "88fa45faf38a500e6ca33b85d99ed5210ece72dd3fb889b61b0ea9d00116b6fa"),
    ),
    "structures_scope_domains": (
        ("index.csv", "b2c47478443983d7eff621ac4043a690f7c83d9e0ef430235348596f48764a49"),
        ("sequences.fasta", "3a92d9a5f034ac45d816e091f3708b8854fbe4bede11378dcecf17b11f71c473"),
        ("pdb/d1asha_.pdb", "b4ec14f5decc94b5363b3414db4d25e3e09039c7a6fbb585041730dcf3cc1fd8"),
        ("pdb/d1b0ba_.pdb", "cd96ec505470b9f3e2318a380bd6a4ac723d9e8f301cc341060e38512124d3fa"),
        ("pdb/d1cg5a_.pdb", "159bfec103a9b39fcd27d125d2409172d4fddac58248d68ce1ef10ebb148607f"),
        ("pdb/d1cg5b_.pdb", "48542849377ac3f493f3c9ca7d448f841a72b263493a2e85c1c9dc87b3f4c27a"),
        ("pdb/d1cqxa1.pdb", "95c7b0083a146a7be37642c14fd1355526e984d202c8d96016c6264d79957ecd"),
        ("pdb/d1ecaa_.pdb", "8392f49b67223a019413752c9c8cb03759bf2885c2d4c39e3a74d3c0f89f6138"),
        ("pdb/d1eu1a2.pdb", "e18f8aba421027e85246832aab174eea73c69d8a18376eddd534314bc51e7dea"),
        ("pdb/d1g8ka2.pdb", "ec835aa4bcaa7418563c89e61f6c59c3a3f3295b2a54bdb7cd3a6fb8f827a869"),
        ("pdb/d1h97a_.pdb", "b0701a7ba6665deacab04a3fed3d9a79f2ca89fbc357f14c507e0c702ce36e8e"),
        ("pdb/d1hlba_.pdb", "f317dcd7e1d787e1c4463f2e6aea87c8f12eb921e945819e8521cb5c003bcb4c"),
        ("pdb/d1it2a_.pdb", "cc51f0885131b0adf1a187810f3d046b341cf084efbbcc185bd172e17983e152"),
        ("pdb/d1itha_.pdb", "c820de08cc90d6d76fc9a041a3fc160f68d8cb5d1994c490e0f5d4ff04e536ff"),
        ("pdb/d1jl7a_.pdb", "7db1599eb24e074604676cdda8b1d0ce7c1f0d9daa2e4c79aec7df669ff52ca9"),
        ("pdb/d1kqfa2.pdb", "5d8cd372a988cc62bfaa87f95991e8fe9e701056775bbd4f515f092d62b3d0c8"),
        ("pdb/d1mbaa_.pdb", "f34c28d28e237d57334a1809f0b4383a4ad6719726dbde28cf79af11e4a05be7"),
        ("pdb/d1naza_.pdb", "68f5ca12efd39bd730a2d756c7c0da86dca2c9ee7251d66c9d01cfd23eede1cc"),
        ("pdb/d1ogya2.pdb", "9f1bd797a24d78a70d43c1579fb86b6ad24104877e89e45b26d455bebfb6a12a"),
        ("pdb/d1or4a_.pdb", "bf58231b7160be15d3744e731681e120bc848bf7a1de1711a9ba7b8e98681dac"),
        ("pdb/d1q1fa_.pdb", "798861870aae87e9dd9abbdbcb4207debe69962407a831974873e633aa7c8af4"),
        ("pdb/d1ti6a2.pdb", "0423cb8a5a7d96864f9349605e50ceb13709381d6b6cbd6051e767d1be837d44"),
        ("pdb/d1tu9a_.pdb", "354650d14efdd97ab5a3dc0637951d54afa092e24dea1fd5095adbde7c15646d"),
        ("pdb/d1urva_.pdb", "5b161ca31a4e943ecefd3d16556264c32c328ef947b91265e817578bc646d3ec"),
        ("pdb/d1x9fc_.pdb", "dc88d371318549c6ce651955e1f85af659f244ee6f6c718de72afdcdb7d3c375"),
        ("pdb/d1x9fd_.pdb", "38294c71eb875e020e21acbe7ce6e175962fc601020b56507e06b7d0d8dd3397"),
        ("pdb/d1y5ia2.pdb", "14961ef81de844d4d27eec755dc457fb1f7fec94c39ca3bf9de89ef12ec289d1"),
        ("pdb/d2fug32.pdb", "1874ec7a4c1ef355b1dadcc297c887d7cbc882ea0097129ba5cf62a39d200f68"),
        ("pdb/d2gdma_.pdb", "09876fdbc543f8bdd265fa8f7b1bcf012b8e454f145cf3043ee38cc479f4482b"),
        ("pdb/d2iv2x2.pdb", "6e8470d1234cb2a6e159241464a270d90819294936ecb98ada01084836d60431"),
        ("pdb/d2jioa2.pdb", "2617949e5b071be8a7d0aa6eda61db119a08500313bc11cc09f7dd78cc833345"),
        ("pdb/d2nrla_.pdb", "b3945cdf489c0ddcebbc5db87ff8f64fcf6fc9aeb5ff49c0ff1fa17cd6cddd32"),
        ("pdb/d2w72b_.pdb", "fb20096b2cc9ca30e226386b3a56bcf550ecb508b865d992225021164a72ac76"),
        ("pdb/d3boma_.pdb", "ed4cd807c67ed6125c27cdba4a31b7f91a49d1b0f497c8e3873d34f0bed4e68c"),
        ("pdb/d3g46a_.pdb", "eb97fde0880207d1c176bef8ffa7fb901c30479ca993e1e913d803458b297358"),
        ("pdb/d3lb2a_.pdb", "ed3266af534cf5b4ab8b45d7af6a8859aed5cb79950b72621ca433fd7e053c13"),
        ("pdb/d3mkbb_.pdb", "e8f52a891875e9eeee48b95c07dbee6eeda704ecfbf184648e0df8577f9a502f"),
    ),
}

# dataset -> (description, license, source: repository@commit path)
SOURCES: dict[str, tuple[str, str, str]] = {
    "structures_pfam_domains": (
        '20 single-chain Pfam-domain crystal structures (contact maps)',
        'MIT (repo); coordinates wwPDB',
        'Kortemme-Lab/covariation@e806290c96d08474e8043aff118f3568d526b2e7 input/domains/<PFAM>/<PDBID>_<CHAIN>.pdb',
    ),
    "structures_scope_domains": (
        '35 SCOPe domain structures (contact maps)',
        'GPL-3.0 (repo); SCOPe/ASTRAL from wwPDB',
        "steineggerlab/foldseek@d5b1d3d441aed533a5645699fe1aeb95251765a7 example/d* and "
        "@608e796119761f599e0b55b95500c4b08b04b6cd example/large/d* ('.pdb' added)",
    ),
}


def register_structure_sets() -> list[str]:
    """Register the two structure sets (idempotent); returns their names."""
    for name, files in CHECKSUMS.items():
        if name in REGISTRY:
            continue
        description, license_, source = SOURCES[name]
        urls = (_pfam_url if name == "structures_pfam_domains" else lambda f: None)
        register(DatasetSpec(
            name=name, description=description, license=license_, source=source,
            files=tuple(RemoteFile(f, urls(f) if f.startswith("pdb/") else None, sha) for f, sha in files),
        ))
    return list(CHECKSUMS)
