PREDICT_NET = {"width": 4, "hidden": 8, "ndf": 4}
GENERATE_NET = {"ngf": 4, "ndf": 4, "content_dim": 8, "motion_dim": 4, "motion_noise_dim": 4, "image_frames": 2}
