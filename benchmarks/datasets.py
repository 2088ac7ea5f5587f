"""The benchmark data sets, registered in the xtrimo data registry (public source, SHA-256 of the file used).

Most files were converted from their public release (LMDB dumped to CSV, a zip member gzipped, a FASTA header
parsed into columns) and so have no download of their own (``url=None``); ``source`` names the repository, commit
and path they come from. Each folder of ``$XTRIMO_DATA_DIR`` carries a PROVENANCE.md with the recipe.
"""

from __future__ import annotations

from xtrimo.data.registry import REGISTRY, DatasetSpec, RemoteFile, register

_PFAM_URL = "https://raw.githubusercontent.com/Kortemme-Lab/covariation/e806290c96d08474e8043aff118f3568d526b2e7/input/domains/{}/{}.pdb"


def _pfam_url(name: str) -> str:
    """Direct URL of ``pdb/<PFAM>_<PDBID>_<CHAIN>.pdb`` (the file was only renamed)."""
    pfam, rest = name.removeprefix("pdb/").removesuffix(".pdb").split("_", 1)
    return _PFAM_URL.format(pfam, rest)


# dataset -> ((file, sha256), ...)
CHECKSUMS: dict[str, tuple[tuple[str, str], ...]] = {
    "tape_fluorescence": (
        ("test.csv.gz", "88511eb5cf60e559e46a05d6cdbcaf9c8c2c264111a73a951616e30c12d31cc7"),
        ("train.csv.gz", "6e34958523c0b398e9bd600072db16943d8b9228682f0f02f5a4cbcd8b747a08"),
        ("valid.csv.gz", "9db03b092594920ae96b81ad6e1ea52c6669c195793bcbc3f1718ca414c0b624"),
    ),
    "tape_stability": (
        ("test.csv.gz", "64e581d69b62b042c6cd87d5873cca53989c78a4bf36f5caabfa4dde1e86a384"),
        ("train.csv.gz", "33325340add4edf1db4eb524a00a8aeb3ea69ce742742dbd3a27347f9839b9ee"),
        ("valid.csv.gz", "89cee69e56f1d610a353b969a1a09a16a8119556c6f6f006108d1aafcb41a980"),
    ),
    "flip_gb1": (
        ("low_vs_high.csv.gz", "9fb2e15dd4d7d5978a31218ab9821f79e4db7c3444f564d5afa834dd1491e0d3"),
        ("one_vs_rest.csv.gz", "42741676e5e6f80c18a2d51f719b8783e754a330b4e2b27e2ec165b98a875ba7"),
        ("sampled.csv.gz", "ff9ce3b03f18849a68fbb2dc5216ef96c55431fb926834a1ed93e788e5ac2ac4"),
        ("three_vs_rest.csv.gz", "2a820d458ae6787617ca4b14b46c2b99a3fa4273ae3f9958259214606510709c"),
        ("two_vs_rest.csv.gz", "75a1d0b5f6967d8e9c076d6f7ceaab38b9559a9cf5e77031f6d6fbcec3906063"),
    ),
    "flip_meltome_v1": (
        ("clustered_task.csv.gz", "385842521e65b7bd686dc2799a71555465ba4ebc324b866ec5516ebd678ba1a3"),
    ),
    "flip_secondary_structure": (
        ("mask.fasta.gz", "a5e1258a58db23b928fd17884a107ac9d7c4f0f40014f5a3603ee70e18b72296"),
        ("sampled.fasta.gz", "9eead4ea49a196c6607c6279eeaf6309955ad299f2867bfdf8bafdd56f6e0c34"),
        ("sequences.fasta.gz", "e0203ee014121f43dd463d41ad5ea2300f29a1691a5ed02e68542fdc56f33052"),
    ),
    "hu2022_antibiotic_resistance": (
        ("test.csv.gz", "f40ade73ca6441ad481471075cd2ee3330bcb6cbc2241adb06feb4e85690a06d"),
        ("train.csv.gz", "4076cc0b4dc7261a1c74ae5335ea51b3d0e962f7ac489afd80875421ce146c6e"),
    ),
    "hu2022_metal_ion_binding": (
        ("test.csv.gz", "0877f2cc34bc8541929a99bc617f1f5b0a971e19ba427b13c8b410366738512f"),
        ("train.csv.gz", "282d1fcc9c988fba41ab41c485803322bc483bdbea8fbfaab67b602a4b94cefb"),
    ),
    "ephod_optimal_ph": (
        ("test.csv.gz", "14af0022c511ffaa36828f850af84cd58be32c721623147e793348450c91af43"),
        ("train.csv.gz", "3744555439442c733cb8294b2f2f450ccac76ef5fa2407771173609fc2fc551f"),
        ("valid.csv.gz", "74de8647b55f5462bb8b048739d539f1f98bccda0b73d9d9241423b8cacea871"),
    ),
    "enzyme_optimal_temperature": (
        ("topt.csv.gz", "99cf2b1ebf90d5dcd90f429fa448fc6e246bcb8a13cfa4316f837a521cf2b6cc"),
    ),
    "peer_binary_localization": (
        ("test.csv.gz", "39341d92b85f36a1c2796cfb4d7370c9dcadb58b3956b1bb9500f8a7f5324b61"),
        ("train.csv.gz", "6a54dba6d27a8ae278fce6990caba1004efb9330f91acb5a51ba6218f5c44fe0"),
        ("valid.csv.gz", "13e3b614b2d3eefecb88e821e5d3876aca1230ab642b15ce3e13add396c80113"),
    ),
    "peer_subcellular_localization_partial": (
        ("test.csv.gz", "7ad7474ca9cce70d7a084fd64d222acbe5078fe92239fbaa77d35db2ea38cc20"),
        ("valid.csv.gz", "526ede2ba9b65d420fd3f1bc887c3d2ace9952278270c45856278aface91ff17"),
    ),
    "peer_solubility_partial": (
        ("test.csv.gz", "4cbcc46ea07b4f978c53e6f1f740d78fd1d4aecdb0a819f5b9778a2a5c49dd85"),
        ("valid.csv.gz", "c0133917becd2f0be514f3f9e74904c06ecf17b42d578cc01045f623a24a00de"),
    ),
    "peer_ppi_affinity": (
        ("test.csv.gz", "0ad1a03bd0fd4894ffa082b3c4a047c3c9fe495f6dd8507e678ad49e7f613cc9"),
        ("train.csv.gz", "32b7044d50bcc1a6c1ecb772a777d02591cc65c8655a121d7838386578ef4099"),
        ("valid.csv.gz", "ec97f35282b8064a5c86fd63ace923aa67f78ccce9ddd88f0759fb6c981731b3"),
    ),
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

# dataset -> (description, license, source)
SOURCES: dict[str, tuple[str, str, str]] = {
    "tape_fluorescence": (
        'GFP log-fluorescence regression, TAPE split (train/valid <= 3 mutations, test >= 4)',
        'TAPE: BSD-3-Clause; data Sarkisyan et al. 2016',
        'jiaqingxie/DeepProtein@53246f03191137f4aabfe2649a358e285bf9f5e4 DeepPurpose_PP/data/fluorescence.tar.gz (TAPE LMDB release, dumped to CSV)',
    ),
    "tape_stability": (
        'Rocklin mini-protein stability regression, TAPE split',
        'TAPE: BSD-3-Clause; data Rocklin et al. 2017',
        'jiaqingxie/DeepProtein@5343f6ab80ffc96fc90522836a2daffe58b67788 ProB/data/stability.tar.gz (TAPE LMDB release, dumped to CSV)',
    ),
    "flip_gb1": (
        'GB1 4-site fitness regression, the five FLIP splits',
        'AFL-3.0 (splits); data CC BY 4.0',
        'J-SNACKKB/FLIP@62cace8735f5610e2743cf06ce0f944b37fffaa6 splits/gb1/splits.zip (CSVs inside, gzipped)',
    ),
    "flip_meltome_v1": (
        "Meltome Tm regression, early FLIP 'clustered' task (not the final FLIP splits)",
        'AFL-3.0 (splits); Meltome Atlas data',
        'J-SNACKKB/FLIP@09304ad6b9e73994d30960ee484da2e9dd4bd0b1 tasks/meltome/tasks.zip -> tasks/clustered_task.csv',
    ),
    "flip_secondary_structure": (
        "3-state secondary structure per residue (NetSurfP-2.0 data), FLIP 'sampled' split",
        'AFL-3.0 (splits); NetSurfP-2.0 data',
        'J-SNACKKB/FLIP@62cace8735f5610e2743cf06ce0f944b37fffaa6 splits/secondary_structure/splits.zip',
    ),
    "hu2022_antibiotic_resistance": (
        'antibiotic resistance, 19 CARD classes, Hu et al. 2022 split',
        'MIT (repo); CARD terms',
        'elttaes/Revisiting-PLMs@00131dc470c3092a9ae0e2d66c207727f60ff4f3 data/Antibiotic Resistance/{train,test}.txt (to CSV)',
    ),
    "hu2022_metal_ion_binding": (
        'protein-level metal-ion binding (binary), Hu et al. 2022 split',
        'MIT (repo)',
        'elttaes/Revisiting-PLMs@00131dc470c3092a9ae0e2d66c207727f60ff4f3 data/Metal Ion Binding/{train,test}.txt (to CSV)',
    ),
    "ephod_optimal_ph": (
        'enzyme optimum pH regression, official EpHod split',
        'GPL-3.0 (repo); EpHod data CC BY 4.0',
        'SizheQiu/Seq2Topt@e74f5c40bb16ae8e0a6427de521299a17a78ce19 data/pHopt/phopt_{training,validation,testing}.fasta (to CSV)',
    ),
    "enzyme_optimal_temperature": (
        'enzyme optimum temperature regression, 1,902 BRENDA enzymes, md5(id) hash split',
        'GPL-3.0 (repo); BRENDA values',
        'EngqvistLab/Supplemetenary_scripts_datasets_R2LG@be4641efbf87317c7343439096f81c0c27622b5f EnzymeTopt/cleaned_enzyme_topts_v1.fasta (to CSV + split)',
    ),
    "peer_binary_localization": (
        'membrane-bound vs soluble (DeepLoc), PEER split',
        'MIT (repo); PEER Apache-2.0; DeepLoc',
        'jiaqingxie/DeepProtein@114dfbbe6c6f3e807013d7eb079a4690d3e91e76 DeepProtein/data/subcellular_localization_2/*.lmdb (to CSV)',
    ),
    "peer_subcellular_localization_partial": (
        'DeepLoc 10-class localization, PEER valid + test only',
        'MIT (repo); PEER Apache-2.0; DeepLoc',
        'jiaqingxie/DeepProtein@114dfbbe6c6f3e807013d7eb079a4690d3e91e76 DeepProtein/data/subcellular_localization/*.lmdb (to CSV)',
    ),
    "peer_solubility_partial": (
        'DeepSol solubility, PEER valid + test only',
        'MIT (repo); PEER Apache-2.0; DeepSol',
        'jiaqingxie/DeepProtein@114dfbbe6c6f3e807013d7eb079a4690d3e91e76 DeepProtein/data/solubility/*.lmdb (to CSV)',
    ),
    "peer_ppi_affinity": (
        'SKEMPI protein-protein affinity regression (sequence pairs), PEER split',
        'MIT (repo); PEER Apache-2.0; SKEMPI 2.0 CC BY 4.0',
        'jiaqingxie/DeepProtein@114dfbbe6c6f3e807013d7eb079a4690d3e91e76 DeepProtein/data/ppi_affinity/*.lmdb (to CSV)',
    ),
    "structures_pfam_domains": (
        '20 single-chain Pfam-domain crystal structures (contact maps)',
        'MIT (repo); coordinates wwPDB',
        'Kortemme-Lab/covariation@e806290c96d08474e8043aff118f3568d526b2e7 input/domains/<PFAM>/<PDBID>_<CHAIN>.pdb',
    ),
    "structures_scope_domains": (
        '35 SCOPe domain structures (contact maps)',
        'GPL-3.0 (repo); SCOPe/ASTRAL from wwPDB',
        "steineggerlab/foldseek@d5b1d3d441aed533a5645699fe1aeb95251765a7 example/d* and @608e796119761f599e0b55b95500c4b08b04b6cd example/large/d* ('.pdb' added)",
    ),
}


def _url(dataset: str, file: str) -> str | None:
    if dataset == "structures_pfam_domains" and file.startswith("pdb/"):
        return _pfam_url(file)
    return None  # converted or derived: see SOURCES


def register_all() -> list[str]:
    """Register every benchmark data set (idempotent); returns their names."""
    for name, files in CHECKSUMS.items():
        if name in REGISTRY:
            continue
        description, license_, source = SOURCES[name]
        register(DatasetSpec(
            name=name, description=description, license=license_, source=source,
            files=tuple(RemoteFile(f, _url(name, f), sha) for f, sha in files),
        ))
    return list(CHECKSUMS)


register_all()
