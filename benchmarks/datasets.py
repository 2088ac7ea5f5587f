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
    "tape_remote_homology": (
        ("test_fold_holdout.csv.gz", "69ad19a45e5aac152274f7b55e4bb8d19c31caa922a8caebb7bf4bedeb1c9f27"),
        ("train.csv.gz", "5965667d761cfac1b37c2e1bcf046f34a8c29c6dc0a5b4e60bfb3b9b8bcf70be"),
        ("valid.csv.gz", "2bb6833a512eb4fbb4b79711120249d24532f74e730f7bdb625c59474acb3eef"),
        ("tape_label_to_scop_fold.json", "9b51c3d7afa8c96173a0bcb4e4d154ae476dd6e5b82f469eba005f2d946f61e2"),
    ),
    "proteingym_single_site": (
        ("reference.csv", "90df9f4a60ad473ebbea1c7f5422ae6586462b6701431e69420f092ee6f6f482"),
        ("published_spearman.csv", "eb8a587ea431b465a43ef8793c872b8a6c5032a11250a9c999eedfdefd0220dc"),
        ("published_supervised_spearman.csv", "e364a3b482bab0c3d56ab9a03d369c211fe207b0120c5a22ca9a174e524ab288"),
        ("assays/AMIE_PSEAE_Wrenbeck_2017.csv.gz", "feef0c2780ed62e3c9c5106d7cfc3ba84d8762635f3c666ab5861754478d16bf"),
        ("assays/BLAT_ECOLX_Firnberg_2014.csv.gz", "c2355ba3eacbb8bcdb916005871eed43f5c8961ccdbf718f946aa8b684951906"),
        ("assays/BRCA1_HUMAN_Findlay_2018.csv.gz", "a97e2e73721882e5317e09018a4c92fa2804a4e39c3c6328e6cccedaf62f4d06"),
        ("assays/CCDB_ECOLI_Adkar_2012.csv.gz", "7928a34454a414f57b99e99f6f22db984588b339f07fb25af7b85b3bdc22caad"),
        ("assays/DLG4_RAT_McLaughlin_2012.csv.gz", "26465cc14c6ef1a793effaf7e55517ab1e8b6ef727de4d4c9067565e963ca761"),
        ("assays/ESTA_BACSU_Nutschel_2020.csv.gz", "4f8884aee2fa79397d729f0e7f5cf38eb28da8ff222e07c5185106fe6fd95dfa"),
        ("assays/F7YBW8_MESOW_Aakre_2015.csv.gz", "bb6364fe0b15827a3c43129430eea07cdc9beb091260fd125b4dee5617a35362"),
        ("assays/GAL4_YEAST_Kitzman_2015.csv.gz", "f251c8fcd5d25eac0d4af1607053ec45723a211080bd01fa2e47b8c133b716b8"),
        ("assays/GCN4_YEAST_Staller_induction_2018.csv.gz", "61b36d1351ba37f65119332c882291801fd2547fd6b3f55f511af1231d12ec9d"),
        ("assays/GFP_AEQVI_Sarkisyan_2016.csv.gz", "8e1c5b528fd53846066c32e8c281d9f9aa09735672fd94d6961385d100f098d6"),
        ("assays/HIS7_YEAST_Pokusaeva_2019.csv.gz", "75c2cad044a124ae2617c2757d7dca70e24a6a296d705a9e13cf6e114cd63db1"),
        ("assays/HSP82_YEAST_Mishra_2016.csv.gz", "ae8e34181b022dfd2b1ebe31a22c611bb2837fd0900f06d4f0223a18f3b80277"),
        ("assays/IF1_ECOLI_Kelsic_2016.csv.gz", "911bcb946b3d30a41a35b5c63704ef23c138da2a105ca56f69ed93ebf26214f8"),
        ("assays/KCNH2_HUMAN_Kozek_2020.csv.gz", "a66a0edd5ae6a9ecb388dcf7dfb446c51d0992246a656df6a0dfc8b1126c1011"),
        ("assays/KKA2_KLEPN_Melnikov_2014.csv.gz", "544e50445549e46435c9221f20945fe4a4adc200ccddadb45298a50c5298dde9"),
        ("assays/MK01_HUMAN_Brenan_2016.csv.gz", "62b8056499a71f940679c428f3a4a2ba81c17ecb283cafe24b9a107b374ec60c"),
        ("assays/NUD15_HUMAN_Suiter_2020.csv.gz", "6ae43a246a044bee98929364716da9173e54eb094da117769785f0c2724585a1"),
        ("assays/PABP_YEAST_Melamed_2013.csv.gz", "4a1735eb491c77efa84c887a3e85bc28801221099b5a101c65e13101104038a9"),
        ("assays/PTEN_HUMAN_Mighell_2018.csv.gz", "d28fae1384990a805070953aa76b73241a1974a4487d163b1fe6ec2b42010798"),
        ("assays/Q59976_STRSQ_Romero_2015.csv.gz", "2cc7d62966534b068632454f1477e2f5e4d0adee2c96149113319971b1ce945a"),
        ("assays/RASH_HUMAN_Bandaru_2017.csv.gz", "d844103602be83e9b489ac8ba70907d8c609078535a38035d0b31062976c3233"),
        ("assays/SPG1_STRSG_Olson_2014.csv.gz", "d3303cdf4a1e74d7ae6a45a3ef7d5525893086b216e03a17049dfc4e4137345c"),
        ("assays/SUMO1_HUMAN_Weile_2017.csv.gz", "471daef4ec46e975503868e9521b7741bd036e0bb13a8f38840310b755d7bd56"),
        ("assays/SYUA_HUMAN_Newberry_2020.csv.gz", "6233d71137dd6bff62274124541059efba3cf378ae1b74d0427e175cbdac2b71"),
        ("assays/TAT_HV1BR_Fernandes_2016.csv.gz", "fea4e20a9c6313bf9c7285ac47e7e719e46403fbbaaef0041e506855e5114f45"),
        ("assays/TPMT_HUMAN_Matreyek_2018.csv.gz", "3051b5efa1a7ce27674cb2676da216c86ac3c78529eeddd7f9cf3acdf09fc584"),
        ("assays/TRPC_SACS2_Chan_2017.csv.gz", "175bc683606a43db69c94080a2fc346fb7f6d09c2117f68d73b1ba60fbad4546"),
        ("assays/UBC9_HUMAN_Weile_2017.csv.gz", "0a04e3de92c8855ede0a16389104a5674c73d64e0cf665d7034640997c746249"),
        ("assays/UBE4B_MOUSE_Starita_2013.csv.gz", "7684194445b5a2c6a2756965b95340a059c5f89894b558aa5bfa71e7c3d0a973"),
        ("assays/YAP1_HUMAN_Araya_2012.csv.gz", "934097e2d393d371f21582d09f7db59f53e1f75933c102c0c45a7b0f86a1e8f5"),
        ("structures/AMIE_PSEAE_Wrenbeck_2017.pdb.gz", "32b97226b45a9b552ad8842c5522428b23e436c8ae9d1a9d55aae27e6a3562e7"),
        ("structures/BLAT_ECOLX_Firnberg_2014.pdb.gz", "0b8964273481f064af3288a889680da5003d17ca1dc28b6523c07901a3ac7743"),
        ("structures/BRCA1_HUMAN_Findlay_2018.pdb.gz", "433a6c53478e908a9221887594cab11b562ca93bd38a3a6ffde446ec2cf23ab5"),
        ("structures/CCDB_ECOLI_Adkar_2012.pdb.gz", "cf53916f3f37dfa3f507bc1706d76ab5eff735624b116464a809f4a79ccb27fd"),
        ("structures/DLG4_RAT_McLaughlin_2012.pdb.gz", "bfe797eb972d1e1e5b765324f1c68ec1bb633ec7cedc8789daf5c68c7e3012b1"),
        ("structures/ESTA_BACSU_Nutschel_2020.pdb.gz", "7a51609e6884b841c6518f9db4edf66d0b8822c6f4680cd5d2befd51d10f9499"),
        ("structures/F7YBW8_MESOW_Aakre_2015.pdb.gz", "3c3644947c3ed71cf94d1caff8074cf77cb2dda92b53d8a191e5fc679516cd67"),
        ("structures/GAL4_YEAST_Kitzman_2015.pdb.gz", "c1308b43869c9c336a90ead583b037a55ba6cd4b2cde0675d3416e3bce08e355"),
        ("structures/GCN4_YEAST_Staller_induction_2018.pdb.gz", "26896cf39fd585926c09d58590ef7533be0b61ad365f8116680f49711f2b7262"),
        ("structures/GFP_AEQVI_Sarkisyan_2016.pdb.gz", "cdcd2b3572302fda328da299ff1973499714ea7f472a4899dc06ed49985fc293"),
        ("structures/HIS7_YEAST_Pokusaeva_2019.pdb.gz", "ad935acf300b3626a2b9546230d2d93cf8b97b9127579f6bef9c7e2fb5cbaa5c"),
        ("structures/HSP82_YEAST_Mishra_2016.pdb.gz", "7ba5f5b523946da2f76cc4c5280a87af17278765dc85a9b7cfdbd0e3d37b0e60"),
        ("structures/IF1_ECOLI_Kelsic_2016.pdb.gz", "bc318d3e57ae7308ba5371dacfd2397a6d4b482027f8328ccbf4f2d6e0a1c2eb"),
        ("structures/KCNH2_HUMAN_Kozek_2020.pdb.gz", "f9c35785966f948c471a3b7d2afc3e446fda4c9b841cd0b2af0603f0fa18a908"),
        ("structures/KKA2_KLEPN_Melnikov_2014.pdb.gz", "80ecfe30e2b06dfaf3b0ed31f2557cf5021253511962a45d92030041e672c573"),
        ("structures/MK01_HUMAN_Brenan_2016.pdb.gz", "47b536b83183541dd936a4e73ba528c2d22f3530a356250a38dc57a7c185d1aa"),
        ("structures/NUD15_HUMAN_Suiter_2020.pdb.gz", "f0d6e6afafce1cb3e696a68d559da21e039fe715a99b8486f26dc2f593de97a7"),
        ("structures/PABP_YEAST_Melamed_2013.pdb.gz", "e0b72255a32afda15d8b661fc28b070480c5e475935e0bf78c3c2fc9d4a4b45a"),
        ("structures/PTEN_HUMAN_Mighell_2018.pdb.gz", "698b64b391a3190cb570055af9981803fe35ad2ee84d44f1454bfaa3d09c308a"),
        ("structures/Q59976_STRSQ_Romero_2015.pdb.gz", "beb98f17114ef66ea986868c537f014cf3add35283cbcff2f2ffc83dd62e8d43"),
        ("structures/RASH_HUMAN_Bandaru_2017.pdb.gz", "02e191483ae6e6f6667a26890f3de83f4d44332629f7fb670a1feed863b2b3bd"),
        ("structures/SPG1_STRSG_Olson_2014.pdb.gz", "78a0141218359c5dc3150834acf29cc9071554b32b153acebd32aa8a8056a8c9"),
        ("structures/SUMO1_HUMAN_Weile_2017.pdb.gz", "6bbd407cbddbe32ef6e318b0c4f12af085a53a33106166a876d1d9259e9745e0"),
        ("structures/SYUA_HUMAN_Newberry_2020.pdb.gz", "6841559e9a3f29e317ecaa61615b0664541f25299567ddb9d2aebf046b7ae2d0"),
        ("structures/TAT_HV1BR_Fernandes_2016.pdb.gz", "07f7dfd8a595224f15126b3464ff78d8c2446bd3f2bb4e46c0b7bbcb1071a241"),
        ("structures/TPMT_HUMAN_Matreyek_2018.pdb.gz", "581028f97bfd59cc3d9c4ccdbdbabe9f5c10a522df01a616ba56d7d8b813bf23"),
        ("structures/TRPC_SACS2_Chan_2017.pdb.gz", "c14e0a569a13920c608898b9da36a1b20d9aa28e0c38827b1d68e6821c99caa0"),
        ("structures/UBC9_HUMAN_Weile_2017.pdb.gz", "138d4e253dfe3e5823ecfef183fce9edf692d2c069bafd3d9f5c8975e2c375de"),
        ("structures/UBE4B_MOUSE_Starita_2013.pdb.gz", "b3a64f1a3c394ecea600c5ae270d424dc1764051bbeeeedf73827027791d0bf4"),
        ("structures/YAP1_HUMAN_Araya_2012.pdb.gz", "30f7fd35a9bf84db61029645a2a9c1e66f1bdb59be947ebef27b44e9a762081c"),
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
    "tape_remote_homology": (
        "TAPE remote homology: 1,195 SCOP 1.75 folds, train 12,312 / valid 736 / fold-level test 718",
        'MIT (ProteinBERT copy); TAPE BSD-3-Clause; SCOP 1.75 / DeepSF',
        'nadavbra/protein_bert@83198c99 protein_benchmarks/remote_homology.{train,valid,test}.csv (gzipped)',
    ),
    "proteingym_single_site": (
        "30 ProteinGym single-site DMS assays (71,181 mutants), AlphaFold2 models of the wild types, ProteinGym v1 "
        "metadata and its published per-assay Spearman",
        'MIT (both repositories); assays from their publications',
        'ginnm/SingleSiteProteinGYM@98446904 gym_single/{mutant,fasta,alphafold2_pdb}; metadata and published '
        'numbers OATML-Markslab/ProteinGym@bb685245 reference_files/DMS_substitutions.csv, benchmarks/',
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
