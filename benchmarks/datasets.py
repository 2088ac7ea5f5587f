"""The benchmark data sets, registered in the xtrimo data registry (public source, SHA-256 of the file used).

Most files were converted from their public release (LMDB dumped to CSV, a zip member gzipped, a FASTA header
parsed into columns) and so have no download of their own (``url=None``); ``source`` names the repository, commit
and path they come from. Each folder of ``$XTRIMO_DATA_DIR`` carries a PROVENANCE.md with the recipe.
"""

from __future__ import annotations

from xtrimo.data.registry import REGISTRY, DatasetSpec, RemoteFile, register
from xtrimo.data.structures import register_structure_sets

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
}


def register_all() -> list[str]:
    """Register every benchmark data set, the shared structure sets included (idempotent); returns their names.

    Converted or derived files have no download of their own (``url=None``; SOURCES names where they come from).
    """
    for name, files in CHECKSUMS.items():
        if name in REGISTRY:
            continue
        description, license_, source = SOURCES[name]
        register(DatasetSpec(
            name=name, description=description, license=license_, source=source,
            files=tuple(RemoteFile(f, None, sha) for f, sha in files),
        ))
    return list(CHECKSUMS) + register_structure_sets()
